// Log Analytics + workspace-based Application Insights with Entra-only ingestion.
// Kept to the syntax subset pycep-parser 0.5.1 understands, so checkov really scans this file.

@description('Region for the monitoring resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Log Analytics workspace name.')
param workspaceName string

@description('Application Insights component name.')
param appInsightsName string

@description('Days Log Analytics keeps data (30 is the PerGB2018 minimum and costs nothing extra).')
@minValue(30)
@maxValue(730)
param retentionInDays int

@description('Principal id of the function app identity that sends telemetry.')
param publisherPrincipalId string

// Built-in role: Monitoring Metrics Publisher. With local auth disabled, telemetry is only
// accepted from an Entra token that carries this role on the component.
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      // Nothing here ingests with the workspace key (App Insights writes through its own
      // pipeline), so turning shared-key ingestion off costs nothing and removes a secret.
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // The instrumentation key in the connection string is then useless on its own: the host
    // must also present an Entra token (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
    DisableLocalAuth: true
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, publisherPrincipalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: publisherPrincipalId
    // Set explicitly so ARM does not look the principal up in Entra, which can fail for an
    // identity created seconds earlier in the same deployment.
    principalType: 'ServicePrincipal'
  }
}

output connectionString string = appInsights.properties.ConnectionString
output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
output workspaceName string = workspace.name
