// One storage account for the Functions host (blob leases, timer checkpoints), the Flex
// deployment package and the sync's own state tables. Keyless: every client uses the
// user-assigned managed identity.

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region for the account.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Replication. Geo-redundant by default: the link and cycle tables are the only copy of the sync history.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string

@description('Names of the tables the sync uses (letters and digits only).')
param tableNames array

@description('Principal id of the function app identity.')
param principalId string

// Built-in roles (the GUIDs are the same in every tenant).
// Blob Data Owner: the host needs blob leases (timer singleton) and the deployment container.
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
// Table Data Contributor: the sync's state tables (and the host's diagnostic events table).
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
// No queue role: the app uses no queues or queue-based triggers.

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43: the name is computed (take + uniqueString) and is 3-24 lowercase letters and digits by construction; checkov cannot evaluate the expression
  // checkov:skip=CKV_AZURE_35: the Flex plan runs without VNet integration here, so the app reaches storage from shared, changing outbound IPs (and same-region traffic is not matched by IP rules at all); access is keyless, Entra RBAC only, instead
  // checkov:skip=CKV_AZURE_59: public endpoint stays on for the same reason (no VNet/private endpoints in this deployment); shared keys and anonymous blob access are both disabled
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    // No account keys, no SAS signed with them: Entra tokens only. This is what lets the
    // Flex plan and the app work without any storage secret in app settings.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // A deleted or overwritten package or lease blob can be restored for a week.
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Created with the infrastructure so they exist before the first sync cycle runs.
resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwnerRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageTableDataContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output accountName string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainer.name}'
