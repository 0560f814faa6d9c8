//! Jobs for the hosting agent in the single table:
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | job | `JOB#<key>` | `JOB` | `kind`, `rne`, `input` (JSON), `task_token`, `state`, `created_at`, `lease_id`, `lease_expires_at`, `finished_at`, `ttl` |
//!
//! A job that an agent may claim (queued, or leased) is in the `by_status` index with
//! `gsi1pk` = `JOBQ#<kind>` and `gsi1sk` = `<when it becomes claimable, 12 digits>#<key>`:
//! its creation for a queued job, its lease's expiry for a leased one. A claim queries the
//! index up to now and takes a candidate with an update conditional on its unchanged `gsi1sk`,
//! so two agents never lease the same job. A finished job leaves the index and gets `ttl`, the
//! attribute DynamoDB's time to live reads (`template.yaml` must enable it on `ttl`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    corrupt, n, number, optional_number, optional_string, s, string, unavailable, DynamoDbStore,
    BY_STATUS_INDEX,
};
use crate::domain::{Instant, Rne};
use crate::ports::jobs::FINISHED_JOB_RETENTION_SECONDS;
use crate::ports::{Job, JobKind, JobState, JobStore, Lease, NewJob, StoreError};

/// Candidates read from the index per kind and claim: enough to get past a few that another
/// agent takes at the same moment.
const CANDIDATES: i32 = 10;

fn job_pk(key: &str) -> String {
    format!("JOB#{key}")
}

fn queue_pk(kind: JobKind) -> String {
    format!("JOBQ#{}", kind.as_str())
}

fn queue_sk(at: Instant, key: &str) -> String {
    format!("{:012}#{key}", at.unix().max(0))
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(error: &E) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl JobStore for DynamoDbStore {
    async fn enqueue(&self, job: &NewJob) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(job_pk(&job.key))),
            ("sk".to_owned(), s("JOB")),
            ("kind".to_owned(), s(job.kind.as_str())),
            ("rne".to_owned(), s(job.rne.as_str())),
            ("input".to_owned(), s(job.input.to_string())),
            ("task_token".to_owned(), s(&job.task_token)),
            ("state".to_owned(), s(JobState::Queued.as_str())),
            ("created_at".to_owned(), n(job.created_at.unix())),
            ("gsi1pk".to_owned(), s(queue_pk(job.kind))),
            ("gsi1sk".to_owned(), s(queue_sk(job.created_at, &job.key))),
        ]);
        // A new job, or a new token for an existing one; the same token again is a repeated
        // invocation of the step and must not take the job away from the agent working on it.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR task_token <> :token")
            .expression_attribute_values(":token", s(&job.task_token))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(is_condition_failure) => Ok(()),
            Err(error) => Err(unavailable("PutItem job", &error, &[])),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Job>, StoreError> {
        let item = self.get_item(job_pk(key), "JOB", "job").await?;
        item.as_ref().map(job_from).transpose()
    }

    async fn claim(
        &self,
        kinds: &[JobKind],
        lease: &Lease,
        now: Instant,
    ) -> Result<Option<Job>, StoreError> {
        // The claimable jobs of every kind asked for, longest waiting first.
        let mut candidates = Vec::new();
        for kind in kinds {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_STATUS_INDEX)
                .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :now")
                .expression_attribute_values(":pk", s(queue_pk(*kind)))
                // `~` sorts after every key character: every job claimable at `now` is in.
                .expression_attribute_values(":now", s(format!("{:012}#~", now.unix().max(0))))
                .limit(CANDIDATES)
                .send()
                .await
                .map_err(|error| unavailable("Query job queue", &error, &[]))?;
            for item in output.items() {
                let sk = string(item, "gsi1sk")?.to_owned();
                let pk = string(item, "pk")?.to_owned();
                candidates.push((sk, pk));
            }
        }
        candidates.sort();

        for (sk, pk) in candidates {
            let Some(key) = pk.strip_prefix("JOB#") else {
                continue;
            };
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s("JOB"))
                .update_expression(
                    "SET #state = :leased, lease_id = :lease, lease_expires_at = :expires, \
                     gsi1sk = :next_sk",
                )
                // The index is read eventually consistently: the item itself must still be
                // claimable exactly as it was seen.
                .condition_expression(
                    "gsi1sk = :seen_sk AND (#state = :queued OR #state = :leased)",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":leased", s(JobState::Leased.as_str()))
                .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
                .expression_attribute_values(":lease", s(&lease.id))
                .expression_attribute_values(":expires", n(lease.expires_at.unix()))
                .expression_attribute_values(":next_sk", s(queue_sk(lease.expires_at, key)))
                .expression_attribute_values(":seen_sk", s(&sk))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await;
            match result {
                Ok(output) => {
                    let item = output
                        .attributes
                        .ok_or_else(|| corrupt("a claimed job came back empty"))?;
                    return job_from(&item).map(Some);
                }
                // Another agent took it first: try the next one.
                Err(error) if error.as_service_error().is_some_and(is_condition_failure) => {}
                Err(error) => return Err(unavailable("UpdateItem claim job", &error, &[])),
            }
        }
        Ok(None)
    }

    async fn renew(
        &self,
        key: &str,
        lease_id: &str,
        now: Instant,
        expires_at: Instant,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(key)))
            .key("sk", s("JOB"))
            .update_expression("SET lease_expires_at = :expires, gsi1sk = :next_sk")
            .condition_expression(
                "#state = :leased AND lease_id = :lease AND lease_expires_at > :now",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":leased", s(JobState::Leased.as_str()))
            .expression_attribute_values(":lease", s(lease_id))
            .expression_attribute_values(":now", n(now.unix()))
            .expression_attribute_values(":expires", n(expires_at.unix()))
            .expression_attribute_values(":next_sk", s(queue_sk(expires_at, key)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(is_condition_failure) => {
                Err(StoreError::Conflict)
            }
            Err(error) => Err(unavailable("UpdateItem renew job", &error, &[])),
        }
    }

    async fn finish(
        &self,
        key: &str,
        lease_id: &str,
        state: JobState,
        at: Instant,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(key)))
            .key("sk", s("JOB"))
            .update_expression(
                "SET #state = :state, finished_at = :at, #ttl = :ttl REMOVE gsi1pk, gsi1sk",
            )
            .condition_expression("#state = :leased AND lease_id = :lease")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":leased", s(JobState::Leased.as_str()))
            .expression_attribute_values(":lease", s(lease_id))
            .expression_attribute_values(":at", n(at.unix()))
            .expression_attribute_values(
                ":ttl",
                n(at.plus_seconds(FINISHED_JOB_RETENTION_SECONDS).unix()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(is_condition_failure) => {
                Err(StoreError::Conflict)
            }
            Err(error) => Err(unavailable("UpdateItem finish job", &error, &[])),
        }
    }

    async fn cancel(&self, key: &str, at: Instant) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(key)))
            .key("sk", s("JOB"))
            .update_expression(
                "SET #state = :cancelled, finished_at = :at, #ttl = :ttl REMOVE gsi1pk, gsi1sk",
            )
            .condition_expression("#state = :queued OR #state = :leased")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":cancelled", s(JobState::Cancelled.as_str()))
            .expression_attribute_values(":queued", s(JobState::Queued.as_str()))
            .expression_attribute_values(":leased", s(JobState::Leased.as_str()))
            .expression_attribute_values(":at", n(at.unix()))
            .expression_attribute_values(
                ":ttl",
                n(at.plus_seconds(FINISHED_JOB_RETENTION_SECONDS).unix()),
            )
            .send()
            .await;
        match result {
            // Absent or finished already: nothing to cancel.
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(is_condition_failure) => Ok(()),
            Err(error) => Err(unavailable("UpdateItem cancel job", &error, &[])),
        }
    }
}

type Item = HashMap<String, AttributeValue>;

// Errors name the attribute, never its value: an input holds licence secrets, a task token is
// a credential.
fn job_from(item: &Item) -> Result<Job, StoreError> {
    let key = string(item, "pk")?
        .strip_prefix("JOB#")
        .ok_or_else(|| corrupt("a job's `pk` is invalid"))?
        .to_owned();
    let lease = match (
        optional_string(item, "lease_id")?,
        optional_number::<i64>(item, "lease_expires_at")?,
    ) {
        (Some(id), Some(expires_at)) => Some(Lease {
            id: id.to_owned(),
            expires_at: Instant::from_unix(expires_at),
        }),
        (None, None) => None,
        _ => return Err(corrupt("a job's lease is incomplete")),
    };
    Ok(Job {
        key,
        kind: JobKind::parse(string(item, "kind")?).map_err(|_| corrupt("`kind` is invalid"))?,
        rne: Rne::parse(string(item, "rne")?).map_err(|_| corrupt("`rne` is invalid"))?,
        input: serde_json::from_str(string(item, "input")?)
            .map_err(|_| corrupt("a job's `input` is invalid"))?,
        task_token: string(item, "task_token")?.to_owned(),
        state: JobState::parse(string(item, "state")?)
            .ok_or_else(|| corrupt("a job's `state` is invalid"))?,
        lease,
        created_at: Instant::from_unix(number(item, "created_at")?),
        finished_at: optional_number(item, "finished_at")?.map(Instant::from_unix),
    })
}
