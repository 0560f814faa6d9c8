//! `create-job`: the step of a `waitForTaskToken` task, which stores the job the hosting agent
//! will claim, with the task token that its outcome releases.

use serde_json::{json, Value};

use super::{files, Run, StepError, Steps};
use crate::domain::{Instant, Status};
use crate::ports::jobs::job_key;
use crate::ports::uploads::object_key;
use crate::ports::{JobKind, NewJob};

impl Steps {
    /// `create-job` `{"kind", "rne", "attempt", "task_token", "files"?}`: stores the job of
    /// this run unless it is there with this token already. Its input is what the agent gets,
    /// but for download URLs, which are signed when the job is claimed so that they are fresh:
    /// install `{"rne", "griffe", "code", "version", "agricole"}`, mount `{"rne", "bases":
    /// [{"name", "file", "size", "key"}]}` (`key`, the archive in storage, becomes `url`).
    pub(super) async fn create_job(&self, payload: Value) -> Result<Value, StepError> {
        let run = Run::parse(&payload)?;
        let kind = payload
            .get("kind")
            .and_then(Value::as_str)
            .and_then(|kind| JobKind::parse(kind).ok())
            .ok_or_else(|| StepError::invalid("`kind` must be install or mount"))?;
        let task_token = payload
            .get("task_token")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| StepError::invalid("`task_token` is missing"))?
            .to_owned();

        let establishment = self
            .store
            .get(&run.rne)
            .await?
            .ok_or_else(|| StepError::superseded("the establishment does not exist"))?;
        let (status, attempt) = match kind {
            JobKind::Install => (Status::Installing, establishment.provisioning_attempt),
            JobKind::Mount => (Status::Mounting, establishment.mounting_attempt),
        };
        if establishment.status != status || attempt != run.attempt {
            return Err(StepError::superseded(format!(
                "the establishment is in status {} at attempt {attempt}",
                establishment.status
            )));
        }

        let input = match kind {
            // Licence secrets: this input is never logged.
            JobKind::Install => json!({
                "rne": establishment.rne,
                "griffe": establishment.griffe.expose(),
                "code": establishment.code.expose(),
                "version": establishment.version,
                "agricole": establishment.agricole,
            }),
            JobKind::Mount => {
                let bases: Vec<Value> = files(&payload)?
                    .iter()
                    .map(|file| {
                        json!({
                            "name": file.base,
                            "file": file.name,
                            "size": file.size,
                            "key": object_key(&run.rne, &file.id),
                        })
                    })
                    .collect();
                json!({ "rne": establishment.rne, "bases": bases })
            }
        };
        let key = job_key(&run.rne, kind, run.attempt);
        self.jobs
            .enqueue(&NewJob {
                key: key.clone(),
                kind,
                rne: run.rne.clone(),
                input,
                task_token,
                created_at: Instant::now(),
            })
            .await?;
        tracing::info!(rne = %run.rne, job = %key, "job waiting for an agent");
        Ok(json!({ "job": key }))
    }
}
