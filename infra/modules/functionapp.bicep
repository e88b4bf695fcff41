// Flex Consumption (FC1) plan + Linux Python function app running as a user-assigned identity.
// App settings are passed in whole from main.bicep, which is the one place they are defined.

@description('Function app name (also the default host name prefix).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Region for the plan and the app.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('URL of the blob container the plan deploys the app package from.')
param deploymentContainerUrl string

@description('Upper bound on instances the plan may scale out to (Flex allows 40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Spread instances across availability zones (only in regions that support it for Flex). The platform then keeps at least two always-ready instances per scale group, billed around the clock.')
param zoneRedundant bool

@description('Always-ready instances for the HTTP scale group (the webhook); 0: none, the group scales to zero.')
@minValue(0)
@maxValue(40)
param httpAlwaysReady int

@description('App settings as name/value pairs (defined in main.bicep).')
param appSettings object

// Always ready (functionAppConfig.scaleAndConcurrency.alwaysReady): a list of
// { name: <scale group or function:<name>>, instanceCount: N }; 'http' is the group of HTTP
// triggers. With zone redundancy a configured group needs at least two instances (the
// platform keeps two per group in any case), so a request for one becomes two. Zero configures
// nothing: without zone redundancy the group scales to zero, with it the platform keeps its two.
var httpAlwaysReadyCount = zoneRedundant && httpAlwaysReady == 1 ? 2 : httpAlwaysReady
var alwaysReady = httpAlwaysReadyCount > 0 ? [
  {
    name: 'http'
    instanceCount: httpAlwaysReadyCount
  }
] : []

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption is region-dependent and keeps at least two always-ready instances per scale group billed around the clock, so it is an opt-in parameter (zoneRedundant) rather than forced on; the sync tolerates a zone outage by catching up on the next timer run
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    // Linux.
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: Marketo webhooks and the Azure portal cannot present client certificates; the HTTP function is protected by a function key plus the shared webhook secret
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances itself (numberOfWorkers does not apply); a lost instance is replaced and the next timer run catches up
  // checkov:skip=CKV_AZURE_213: the app has no health endpoint and Flex Consumption replaces unhealthy instances itself; App Service health check is not used on this plan
  // checkov:skip=CKV_AZURE_222: Marketo webhooks reach POST /api/sync-person over the public internet, so network isolation is out of scope; the endpoint requires a function key and the webhook secret
  // checkov:skip=CKV_AZURE_78: Flex Consumption does not support siteConfig.ftpsState (listed in the Flex deprecations of the Functions app settings reference; newer regions reject it with BadRequest 51021); FTP is off through the basicPublishingCredentialsPolicies/ftp resource below
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    // Key Vault references resolve with the user-assigned identity. Without this the
    // platform tries a system-assigned identity, which this app does not have.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      // Flex: no alwaysOn, ftpsState, linuxFxVersion or worker-runtime settings here (Flex
      // rejects or ignores them); the runtime is functionAppConfig.runtime below, and FTP is
      // turned off by the ftp basicPublishingCredentialsPolicies resource.
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReady
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Basic (user/password) publishing off: `func azure functionapp publish` authenticates to the
// deployment endpoint with the operator's Entra token, so nothing needs these credentials.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
