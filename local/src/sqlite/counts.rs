//! Counting the establishments in one status, through the `establishments_by_status` index
//! (whose first column is the status), like the DynamoDB adapter's `Select=COUNT`.

use bcdi_shared::domain::Status;
use bcdi_shared::ports::StoreError;

use super::{unavailable, SqliteStore};

impl SqliteStore {
    pub(super) fn count_in_status(&self, status: Status) -> Result<u64, StoreError> {
        let count: i64 = self
            .lock()
            .query_row(
                "SELECT COUNT(*) FROM establishments WHERE status = ?1",
                [status.code()],
                |row| row.get(0),
            )
            .map_err(unavailable)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}
