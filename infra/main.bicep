// Marketo Engage <-> Dynamics 365 sync: everything the function app needs, in one resource group.
//
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
//
// Security model: one user-assigned managed identity does everything (host storage, state
// tables, deployment package, Key Vault references, App Insights ingestion and, by default,
// Dataverse). No storage keys, no instrumentation-key ingestion, secrets only in Key Vault.
//
// Written for the Bicep subset pycep-parser 0.5.1 (checkov 3.3.30) can parse: no import/export,
// no user-defined functions, no nullable or typed-array params, no lambdas. A file it cannot
// parse is skipped silently, which scripts/checkov_gate.py turns into a failure.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Naming and placement
// ---------------------------------------------------------------------------------------------

@description('Region for every resource. Defaults to the resource group region; it must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Short prefix for resource names: lowercase letters and digits only.')
@minLength(2)
@maxLength(10)
param namePrefix string = 'mktosync'

@description('Suffix that makes the global names (storage account, Key Vault, app host name) unique, up to 13 characters. Only its letters and digits are used, lower-cased: "Prod-2" gives st...prod2, kv-...-prod2, func-...-prod2. Empty (the default), or no letter or digit: a hash of the subscription and resource group. Set it to deploy a second copy into the same resource group, or when a soft-deleted vault still holds the old name.')
@maxLength(13)
param nameSuffix string = ''

@description('Tags applied to every resource.')
param tags object = {}

// ---------------------------------------------------------------------------------------------
// Marketo
// ---------------------------------------------------------------------------------------------

@description('Marketo REST base URL without /rest or /identity, e.g. https://123-ABC-456.mktorest.com (Admin > Web Services > REST API).')
@minLength(12)
param marketoBaseUrl string

@description('Client id of the Marketo LaunchPoint custom service.')
@minLength(1)
param marketoClientId string

@secure()
@description('Client secret of the Marketo LaunchPoint custom service (stored in Key Vault).')
@minLength(1)
param marketoClientSecret string

// ---------------------------------------------------------------------------------------------
// Dynamics 365 / Dataverse
// ---------------------------------------------------------------------------------------------

@description('Dataverse environment URL, e.g. https://contoso.crm.dynamics.com.')
@minLength(12)
param dynamicsUrl string

@description('Entra tenant of the Dataverse environment.')
param dynamicsTenantId string = tenant().tenantId

@description('Client id of an Entra app registration, used only together with dynamicsClientSecret. Leave empty to let the managed identity be the Dataverse application user.')
param dynamicsAppClientId string = ''

@secure()
@description('Client secret of that app registration (stored in Key Vault). Empty (the default): no secret, the managed identity signs in to Dataverse.')
param dynamicsClientSecret string = ''

// ---------------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------------

@description('NCRONTAB schedule of the sync timer, in UTC: {second} {minute} {hour} {day} {month} {day-of-week}. The default is the 5-minute beat of the native connector.')
param syncSchedule string = '0 */5 * * * *'

@description('Prefix of the state table names (letters and digits, must start with a letter).')
@minLength(3)
@maxLength(40)
param tablePrefix string = 'mktosync'

@secure()
@description('Shared secret the Marketo webhook sends with each call (stored in Key Vault).')
@minLength(16)
param webhookSecret string

@secure()
@description('Key for the hashes that stand in for personal data in the state tables (stored in Key Vault). Keep it stable: a new key invalidates the hashes already stored.')
@minLength(32)
param syncHashKey string

// ---------------------------------------------------------------------------------------------
// Capacity and resilience
// ---------------------------------------------------------------------------------------------

@description('Storage replication. Geo-redundant by default because the state tables are the only record of links and sync history.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_GRS'

@description('Spread the Flex plan across availability zones (only where the region supports it). Not free: with zone redundancy the platform keeps at least two always-ready instances per scale group, whatever httpAlwaysReady says, and bills them around the clock as always-ready instances (instanceMemoryMB of baseline while idle, no free grant). This app has two scale groups (http for the webhook and function:sync_timer for the timer), so at least four instances. Set httpAlwaysReady to 1 and zone redundancy makes it 2.')
param zoneRedundant bool = false

@description('Always-ready instances for the HTTP scale group, the Marketo webhook. 0 (the default): the app scales to zero, and the first webhook call after an idle spell waits for a cold start inside the 30-second Marketo timeout (Marketo never retries on its own). 1 or more: that many instances stay running, billed around the clock as always-ready (each one instanceMemoryMB of baseline while idle, 2 GB x 2,592,000 s = 5,184,000 GB-s a month at 2048 MB, plus its executions; no free grant). With zoneRedundant, 1 becomes 2. Trade-off: docs/webhook.md.')
@minValue(0)
@maxValue(40)
param httpAlwaysReady int = 0

@description('Most instances the app may scale out to (Flex minimum is 40). The timer runs as a singleton; only webhook bursts scale out.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Days Log Analytics keeps telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// ---------------------------------------------------------------------------------------------
// Alerts (infra/modules/alerts.bicep): mailed to alertEmail; none are created when it is empty
// ---------------------------------------------------------------------------------------------

@description('Address that receives the sync alerts (failed cycles, lag, rejections, quota). Empty: no alert rules.')
param alertEmail string = ''

@description('Alert after this many failed cycles in a row.')
@minValue(1)
param alertFailedCycles int = 3

@description('Alert when changes may have waited longer than this many minutes.')
@minValue(10)
param alertLagMinutes int = 30

@description('Alert when more writes than this are rejected within 15 minutes.')
@minValue(1)
param alertRejectionBurst int = 20

@description('Alert when this percentage of the daily Marketo budget of the sync is used.')
@minValue(50)
@maxValue(100)
param alertQuotaPercent int = 90

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var prefix = toLower(namePrefix)
// The suffix goes into every name, and the storage account accepts only lowercase letters and
// digits (Key Vault also rejects '--' and a trailing '-'). Bicep has no regular expressions, so
// it is cleaned one character at a time: 'Prod-2' becomes 'prod2'. tests/infra checks this.
var suffixAllowed = 'abcdefghijklmnopqrstuvwxyz0123456789'
var suffixChars = [for i in range(0, length(nameSuffix)): substring(toLower(nameSuffix), i, 1)]
var suffixKept = [for c in suffixChars: contains(suffixAllowed, c) ? c : '']
var cleanSuffix = join(suffixKept, '')
// Stable across redeployments of the same resource group, so names never drift. A suffix with
// no letter or digit counts as empty.
var token = empty(cleanSuffix) ? uniqueString(subscription().id, resourceGroup().id) : cleanSuffix
var functionAppName = 'func-${prefix}-${token}'
// Storage names allow lowercase letters and digits only, 3-24 characters.
var storageAccountName = take('st${replace(prefix, '-', '')}${token}', 24)
// Key Vault names allow 3-24 letters, digits and hyphens and must end with a letter or digit.
var keyVaultName = take('kv-${prefix}-${token}', 24)
var deploymentContainerName = 'app-package'
// The code builds each table name as SYNC_TABLE_PREFIX + one of these suffixes.
var tableNames = [
  '${tablePrefix}state'
  '${tablePrefix}links'
  '${tablePrefix}cycles'
  '${tablePrefix}errors'
  '${tablePrefix}personlog'
]
var useDynamicsSecret = !empty(dynamicsClientSecret)

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

// User-assigned rather than system-assigned: it exists before the app does, so its roles are
// in place when the host first starts, and it survives re-creating the app (the Dataverse
// application user keeps working).
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${prefix}-${token}'
  location: location
  tags: tags
}

// ---------------------------------------------------------------------------------------------
// Modules (each file is scanned on its own by checkov)
// ---------------------------------------------------------------------------------------------

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring-${token}'
  params: {
    location: location
    tags: tags
    workspaceName: 'log-${prefix}-${token}'
    appInsightsName: 'appi-${prefix}-${token}'
    retentionInDays: logRetentionDays
    publisherPrincipalId: identity.properties.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage-${token}'
  params: {
    name: storageAccountName
    location: location
    tags: tags
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    tableNames: tableNames
    principalId: identity.properties.principalId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault-${token}'
  params: {
    name: keyVaultName
    location: location
    tags: tags
    principalId: identity.properties.principalId
    marketoClientSecret: marketoClientSecret
    dynamicsClientSecret: dynamicsClientSecret
    webhookSecret: webhookSecret
    hashKey: syncHashKey
  }
}

// ---------------------------------------------------------------------------------------------
// App settings: the ONE place they are defined (tests/infra/test_bicep.py reads this block).
// Names match sync_core/settings.py exactly. Secrets are Key Vault references, never values.
//
// Deliberately absent:
//  - FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE,
//    WEBSITE_CONTENT*, SCM_DO_BUILD_DURING_DEPLOYMENT: Flex rejects or ignores them; runtime and
//    deployment live in functionAppConfig.
//  - AzureFunctionsJobHost__functionTimeout: host.json owns functionTimeout; an override here
//    would silently win over it.
//  - SYNC_STORAGE_CONNECTION: the state tables are reached with the identity via
//    SYNC_STORAGE_ACCOUNT_URL (shared keys are disabled on the account).
// ---------------------------------------------------------------------------------------------

var appSettings = {
  // Host storage over the identity (blob leases for the timer singleton, host keys).
  AzureWebJobsStorage__accountName: storage.outputs.accountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  // Telemetry: the connection string locates the component; the authentication string makes
  // the host send an Entra token from the identity (local auth is disabled on the component).
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  // Lets azure-identity's DefaultAzureCredential/ManagedIdentityCredential pick the
  // user-assigned identity without being told (an app with no system identity needs this).
  AZURE_CLIENT_ID: identity.properties.clientId

  MARKETO_BASE_URL: marketoBaseUrl
  MARKETO_CLIENT_ID: marketoClientId
  MARKETO_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.marketoClientSecretUri})'

  DYNAMICS_URL: dynamicsUrl
  DYNAMICS_TENANT_ID: dynamicsTenantId
  // No secret: the identity is the Dataverse application user and the code signs in as it.
  DYNAMICS_CLIENT_ID: useDynamicsSecret ? dynamicsAppClientId : identity.properties.clientId
  DYNAMICS_CLIENT_SECRET: useDynamicsSecret ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.dynamicsClientSecretUri})' : ''

  // Table endpoint, not a connection string: the code then authenticates with the identity.
  SYNC_STORAGE_ACCOUNT_URL: storage.outputs.tableEndpoint
  SYNC_TABLE_PREFIX: tablePrefix
  // The timer binding reads it as %SYNC_SCHEDULE%: without it the function does not index.
  SYNC_SCHEDULE: syncSchedule
  SYNC_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.webhookSecretUri})'
  SYNC_HASH_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.hashKeySecretUri})'
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp-${token}'
  params: {
    name: functionAppName
    planName: 'plan-${prefix}-${token}'
    location: location
    tags: tags
    identityId: identity.id
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    zoneRedundant: zoneRedundant
    httpAlwaysReady: httpAlwaysReady
    appSettings: appSettings
  }
  // No explicit dependsOn needed: the app settings reference outputs of all three modules, so
  // ARM finishes them (role assignments included) before the app is created and first starts.
}

module alerts 'modules/alerts.bicep' = if (!empty(alertEmail)) {
  name: 'alerts-${token}'
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    actionGroupName: 'ag-${prefix}-${token}'
    alertEmail: alertEmail
    failedCycles: alertFailedCycles
    lagMinutes: alertLagMinutes
    rejectionBurst: alertRejectionBurst
    quotaPercent: alertQuotaPercent
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

output functionAppName string = functionApp.outputs.name
output functionAppUrl string = 'https://${functionApp.outputs.defaultHostName}'
output webhookUrl string = 'https://${functionApp.outputs.defaultHostName}/api/sync-person'
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output storageTableEndpoint string = storage.outputs.tableEndpoint
output keyVaultName string = keyVault.outputs.name
