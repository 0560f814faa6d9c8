//! Starting the provisioning and mounting workflows.

use async_trait::async_trait;

use crate::domain::Rne;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkflowKind {
    Provisioning,
    Mounting,
}

impl WorkflowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowKind::Provisioning => "provisioning",
            WorkflowKind::Mounting => "mounting",
        }
    }
}

/// One run of a workflow for one establishment. Its name is fixed by establishment, kind and
/// attempt, so that starting the same run twice starts it once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkflowRun {
    pub kind: WorkflowKind,
    pub rne: Rne,
    pub attempt: u32,
}

impl WorkflowRun {
    /// A name valid for a Step Functions execution: `0750655E-provisioning-1`.
    pub fn name(&self) -> String {
        format!("{}-{}-{}", self.rne, self.kind.as_str(), self.attempt)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("workflow engine unavailable: {0}")]
pub struct WorkflowError(pub String);

#[async_trait]
pub trait Workflows: Send + Sync {
    /// Starts the run unless a run of that name was already started; either way `Ok`. The
    /// execution's input is `input` (a JSON object) with `rne` and `attempt` added.
    async fn start(&self, run: &WorkflowRun, input: serde_json::Value)
        -> Result<(), WorkflowError>;
}

impl WorkflowRun {
    /// The execution input: `input` with the run's `rne` and `attempt`.
    pub fn input(&self, input: serde_json::Value) -> serde_json::Value {
        let mut input = match input {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        input.insert("rne".to_owned(), self.rne.as_str().into());
        input.insert("attempt".to_owned(), self.attempt.into());
        serde_json::Value::Object(input)
    }
}
