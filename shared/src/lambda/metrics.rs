//! The gauges the E1/E2 alarms watch: how many establishments are in E1 and in E2 now, counted
//! by the store's status index and published in CloudWatch's embedded metric format (EMF). EMF
//! is one JSON line on standard output, which CloudWatch Logs turns into metrics in the
//! function's own log group: no CloudWatch client, no `cloudwatch:PutMetricData` permission.
//! The scheduled sweeper (`notifications::run_sweeper`, every minute) publishes them.

use std::io::Write;

use serde_json::json;

use crate::domain::Status;
use crate::ports::{EstablishmentStore, StoreError};

/// Establishments whose installation failed, now (`E1`).
pub const ESTABLISHMENTS_IN_E1: &str = "EstablishmentsInE1";
/// Establishments whose bases could not be used, now (`E2`).
pub const ESTABLISHMENTS_IN_E2: &str = "EstablishmentsInE2";
/// Every metric this module publishes; `tests/infra.rs` checks the alarms watch only these or
/// a metric filter's.
pub const PUBLISHED: [&str; 2] = [ESTABLISHMENTS_IN_E1, ESTABLISHMENTS_IN_E2];

/// How many establishments are in E1 and in E2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedCounts {
    pub install_failed: u64,
    pub mount_failed: u64,
}

impl FailedCounts {
    /// Counts them with the store (two index queries).
    pub async fn read(store: &dyn EstablishmentStore) -> Result<Self, StoreError> {
        Ok(Self {
            install_failed: store.count_by_status(Status::InstallFailed).await?,
            mount_failed: store.count_by_status(Status::MountFailed).await?,
        })
    }

    /// The EMF line (no newline) that publishes both counts in `namespace` at
    /// `timestamp_millis` (Unix milliseconds), without dimensions: one value per stack, which
    /// the namespace (`BCDI/<stack>`) already tells apart.
    pub fn emf_line(&self, namespace: &str, timestamp_millis: u64) -> String {
        json!({
            "_aws": {
                "Timestamp": timestamp_millis,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    // One empty dimension set: the metrics have no dimension.
                    "Dimensions": [[]],
                    "Metrics": [
                        { "Name": ESTABLISHMENTS_IN_E1, "Unit": "Count" },
                        { "Name": ESTABLISHMENTS_IN_E2, "Unit": "Count" },
                    ],
                }],
            },
            ESTABLISHMENTS_IN_E1: self.install_failed,
            ESTABLISHMENTS_IN_E2: self.mount_failed,
        })
        .to_string()
    }
}

/// Counts the failed establishments and writes their EMF line, newline-terminated, to `out`:
/// standard output in Lambda, which sends it to the function's log group as is (a function
/// on an OS-only runtime has its output kept unchanged in the JSON log format). A store failure
/// is logged and publishes nothing: the alarms then see missing data, which they report
/// (docs/operations.md).
pub async fn publish_failed_counts(
    store: &dyn EstablishmentStore,
    namespace: &str,
    out: &mut (dyn Write + Send),
) {
    match FailedCounts::read(store).await {
        Ok(counts) => {
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or_default();
            // One write of the whole line, so that no other log line lands inside it.
            let line = format!("{}\n", counts.emf_line(namespace, millis));
            if let Err(error) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                tracing::warn!(%error, "failed counts not published: output");
            }
        }
        Err(error) => tracing::warn!(%error, "failed counts not published: store unavailable"),
    }
}
