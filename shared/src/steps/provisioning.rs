//! The provisioning workflow's own steps: status `1` for the run's attempt, then `2` once the
//! agent installed the server.

use serde_json::{json, Value};

use super::{superseded, Decision, Run, StepError, Steps};
use crate::domain::{Connection, Status};

impl Steps {
    /// `begin-install` `{"rne", "attempt"}`: makes sure the establishment is installing for
    /// this attempt. A creation stored status `1` with attempt 1 already; an operator's retry
    /// from `E1` starts attempt n+1, which moves `E1` → `1` here with a new expected time.
    /// Returns the timing of the install job: `{"timeout_seconds", "heartbeat_seconds"}`.
    pub(super) async fn begin_install(&self, payload: Value) -> Result<Value, StepError> {
        let run = Run::parse(&payload)?;
        let eta = self.config.install_eta.as_secs();
        self.change(&run.rne, |establishment, now| {
            if establishment.provisioning_attempt == run.attempt
                && establishment.status == Status::Installing
            {
                return Ok(Decision::Done);
            }
            if establishment.provisioning_attempt < run.attempt
                && establishment.status == Status::InstallFailed
            {
                let mut transition = establishment
                    .transition(Status::Installing, now)
                    .map_err(|error| StepError::superseded(error.to_string()))?;
                transition.next_step_at = Some(now.plus_seconds(eta));
                transition.provisioning_attempt = run.attempt;
                return Ok(Decision::Apply(transition));
            }
            Ok(superseded(establishment))
        })
        .await?;
        Ok(self.job_timing(self.config.install_timeout))
    }

    /// `mark-installed` `{"rne", "attempt", "result": {"host", "port"}}`: `1` → `2`, keeping
    /// where the server answers. The client download URL comes with the mounting.
    pub(super) async fn mark_installed(&self, payload: Value) -> Result<Value, StepError> {
        let run = Run::parse(&payload)?;
        let result = payload
            .get("result")
            .ok_or_else(|| StepError::invalid("`result` is missing"))?;
        let host = result
            .get("host")
            .and_then(Value::as_str)
            .filter(|host| !host.is_empty())
            .ok_or_else(|| StepError::invalid("`result.host` must be a host name"))?
            .to_owned();
        let port = result
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|port| u16::try_from(port).ok())
            .filter(|port| *port > 0)
            .ok_or_else(|| StepError::invalid("`result.port` must be a port number"))?;

        self.change(&run.rne, |establishment, now| {
            if establishment.provisioning_attempt != run.attempt {
                return Ok(superseded(establishment));
            }
            match establishment.status {
                Status::Installing => {
                    let mut transition = establishment
                        .transition(Status::AwaitingBases, now)
                        .map_err(|error| StepError::superseded(error.to_string()))?;
                    transition.connection = Some(Connection {
                        host: host.clone(),
                        port,
                        client_download_url: String::new(),
                    });
                    Ok(Decision::Apply(transition))
                }
                // Installed already (a repeated invocation), or the school went on since.
                Status::AwaitingBases | Status::Mounting | Status::Ready | Status::MountFailed => {
                    Ok(Decision::Done)
                }
                Status::InstallFailed => Ok(superseded(establishment)),
            }
        })
        .await?;
        Ok(json!({ "status": Status::AwaitingBases.code() }))
    }
}
