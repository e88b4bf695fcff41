// Azure Monitor alerts on the sync's own telemetry, mailed to one action group.
//
// Each rule is a scheduled log query over the custom metrics the app exports to Application
// Insights (sync_core/telemetry.py: sync.cycles, sync.cursor.lag, sync.rejections,
// sync.marketo.quota_used), evaluated every 5 minutes. A rule fires when its query returns a
// row and resolves itself once the query comes back empty. Kept to the syntax subset
// pycep-parser 0.5.1 understands, so checkov really scans this file.

@description('Tags applied to every resource.')
param tags object

@description('Region of the alert rules (the action group itself is global).')
param location string

@description('Resource id of the Application Insights component the app reports to.')
param appInsightsId string

@description('Action group name.')
param actionGroupName string

@description('Address that receives the alert mails.')
@minLength(3)
param alertEmail string

@description('Alert when this many cycles in a row failed (or stopped) and none succeeded since.')
@minValue(1)
param failedCycles int

@description('Alert when a cursor was last saved longer ago than this (minutes): the oldest unsynced change waits at least that long.')
@minValue(10)
param lagMinutes int

@description('Alert when more writes than this were rejected within 15 minutes.')
@minValue(1)
param rejectionBurst int

@description('Alert when this percentage of the daily Marketo API budget of the sync is used.')
@minValue(50)
@maxValue(100)
param quotaPercent int

var rules = [
  {
    name: 'failed-cycles'
    displayName: 'Marketo-Dynamics sync: cycles keep failing'
    description: 'At least ${failedCycles} cycles failed or stopped in the last hour and none succeeded. Run python -m sync_core status and doctor.'
    severity: 1
    windowSize: 'PT1H'
    query: 'customMetrics | where name == "sync.cycles" | extend outcome = tostring(customDimensions.outcome) | summarize failed = sumif(valueSum, outcome in ("failed", "stopped")), ok = sumif(valueSum, outcome in ("succeeded", "partial")) | where failed >= ${failedCycles} and ok == 0'
  }
  {
    name: 'cursor-lag'
    displayName: 'Marketo-Dynamics sync: changes are waiting too long'
    description: 'A cursor was last saved more than ${lagMinutes} minutes ago, so changes wait longer than that to sync.'
    severity: 2
    windowSize: 'PT30M'
    query: 'customMetrics | where name == "sync.cursor.lag" | summarize lag = max(value) by cursor = tostring(customDimensions.cursor) | where lag > ${lagMinutes * 60}'
  }
  {
    name: 'no-cycles'
    displayName: 'Marketo-Dynamics sync: no cycle reported'
    description: 'No cycle reported any telemetry for 30 minutes: the timer is not running or cannot start.'
    severity: 1
    windowSize: 'PT30M'
    query: 'customMetrics | where name == "sync.cycles" | summarize n = count() | where n == 0'
  }
  {
    name: 'rejection-burst'
    displayName: 'Marketo-Dynamics sync: burst of rejected writes'
    description: 'More than ${rejectionBurst} writes were rejected in 15 minutes (validation, business rules, duplicates). See python -m sync_core errors.'
    severity: 2
    windowSize: 'PT15M'
    query: 'customMetrics | where name == "sync.rejections" | summarize n = sum(valueSum) | where n > ${rejectionBurst}'
  }
  {
    name: 'quota'
    displayName: 'Marketo-Dynamics sync: Marketo API budget nearly used'
    description: '${quotaPercent}% of the daily Marketo API budget of the sync is used; cycles stop at 100% until the quota day ends (midnight US Central).'
    severity: 2
    windowSize: 'PT15M'
    query: 'customMetrics | where name == "sync.marketo.quota_used" | summarize used = max(value) | where used * 100 >= ${quotaPercent}'
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'mktosync'
    enabled: true
    emailReceivers: [
      {
        name: 'sync-admin'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: 'alert-${rule.name}'
  location: location
  tags: tags
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: rule.windowSize
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id
