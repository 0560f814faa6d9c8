//! Establishments in one DynamoDB table.

use async_trait::async_trait;

use crate::domain::{Digest, Establishment, Rne, StatusEvent};
use crate::ports::{EstablishmentStore, StoreError};

pub struct DynamoDbStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }
}

#[async_trait]
impl EstablishmentStore for DynamoDbStore {
    async fn get(&self, _rne: &Rne) -> Result<Option<Establishment>, StoreError> {
        let _ = (&self.client, &self.table);
        Err(StoreError::Unavailable("WIP".into()))
    }
    async fn find_by_key(&self, _key: &Digest) -> Result<Option<Rne>, StoreError> {
        Err(StoreError::Unavailable("WIP".into()))
    }
    async fn create(&self, _e: &Establishment) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("WIP".into()))
    }
    async fn replace_key(&self, _r: &Rne, _p: &Digest, _n: &Digest) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("WIP".into()))
    }
    async fn delete_unstarted(&self, _r: &Rne, _k: &Digest) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("WIP".into()))
    }
    async fn history(&self, _r: &Rne) -> Result<Vec<StatusEvent>, StoreError> {
        Err(StoreError::Unavailable("WIP".into()))
    }
}
