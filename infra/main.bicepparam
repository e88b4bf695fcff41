// Parameters for infra/main.bicep. Non-secret values live here; secrets are read from the
// deploying shell's environment, under the same names the app uses (never commit them), or
// are given on the command line:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam -p marketoClientSecret=...
// Parameters you may want to override are all assigned here (some CLI versions only override
// parameters the .bicepparam file assigns). location and dynamicsTenantId keep their defaults
// from main.bicep: the resource group's region and the deploying tenant.
using 'main.bicep'

// Naming: resources are called <type>-<namePrefix>-<nameSuffix>, e.g. func-mktosync-4f2k...;
// an empty suffix means a hash of the subscription and resource group. Only the suffix's
// letters and digits are used, lower-cased ('Prod-2' gives func-mktosync-prod2).
param namePrefix = 'mktosync'
param nameSuffix = ''
param tags = {
  app: 'marketo-dynamics-sync'
}

// Marketo: Admin > Web Services > REST API (Endpoint without the trailing /rest).
param marketoBaseUrl = readEnvironmentVariable('MARKETO_BASE_URL', '')
param marketoClientId = readEnvironmentVariable('MARKETO_CLIENT_ID', '')
param marketoClientSecret = readEnvironmentVariable('MARKETO_CLIENT_SECRET', '')

// Dynamics 365 / Dataverse. Leave the app registration empty to use the managed identity.
param dynamicsUrl = readEnvironmentVariable('DYNAMICS_URL', '')
param dynamicsAppClientId = readEnvironmentVariable('DYNAMICS_CLIENT_ID', '')
param dynamicsClientSecret = readEnvironmentVariable('DYNAMICS_CLIENT_SECRET', '')
// Only for an app registration that lives in another tenant than this subscription:
// param dynamicsTenantId = '<tenant id>'

// Sync.
param tablePrefix = 'mktosync'
param webhookSecret = readEnvironmentVariable('SYNC_WEBHOOK_SECRET', '')
param syncHashKey = readEnvironmentVariable('SYNC_HASH_KEY', '')

// Capacity and resilience.
param storageSku = 'Standard_GRS'
param zoneRedundant = false
// Always-ready webhook instances: faster first call, billed around the clock (docs/webhook.md).
param httpAlwaysReady = 0
param maximumInstanceCount = 40
param instanceMemoryMB = 2048
param logRetentionDays = 30

// Alerts: mailed to this address (failed cycles, lag, rejections, Marketo quota); empty: none.
param alertEmail = readEnvironmentVariable('SYNC_ALERT_EMAIL', '')
