//! Workflows on this machine. Runs are recorded by name, so that starting the same run twice
//! starts it once, as Step Functions does with execution names.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use bcdi_shared::ports::{WorkflowError, WorkflowRun, Workflows};

/// Known shortcoming: records runs but does not execute the state machines yet.
#[derive(Default)]
pub struct LocalWorkflows {
    started: Mutex<HashSet<String>>,
}

#[async_trait]
impl Workflows for LocalWorkflows {
    async fn start(
        &self,
        run: &WorkflowRun,
        _input: serde_json::Value,
    ) -> Result<(), WorkflowError> {
        let name = run.name();
        let new = self
            .started
            .lock()
            .map_err(|_| WorkflowError("poisoned".into()))?
            .insert(name.clone());
        if new {
            tracing::info!(workflow = %name, "workflow started");
        }
        Ok(())
    }
}
