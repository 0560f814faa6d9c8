//! Counting the establishments in one status: a `Query` of the `by_status` index with
//! `Select=COUNT`, which returns how many items match and not the items, page after page (a
//! page stops at 1 MB of index data read, so a large status takes several).

use aws_sdk_dynamodb::types::Select;

use super::{s, unavailable, DynamoDbStore, BY_STATUS_INDEX};
use crate::domain::Status;
use crate::ports::StoreError;

impl DynamoDbStore {
    pub(super) async fn count_in_status(&self, status: Status) -> Result<u64, StoreError> {
        let mut count: u64 = 0;
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_STATUS_INDEX)
                .key_condition_expression("gsi1pk = :pk")
                .expression_attribute_values(":pk", s(format!("STATUS#{}", status.code())))
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| unavailable("Query by_status (count)", &error, &[]))?;
            count += u64::try_from(output.count).unwrap_or_default();
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(count),
            }
        }
    }
}
