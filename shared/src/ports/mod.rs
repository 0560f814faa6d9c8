//! What the service needs from the outside world, as small traits. Each has an AWS adapter in
//! `adapters/` and an embedded one in the `bcdi-hosting` crate; both pass the same test suite.

pub mod storage;
pub mod store;
pub mod workflows;

pub use storage::{Storage, StorageError, StoredPart};
pub use store::{EstablishmentStore, Page, StoreError};
pub use workflows::{WorkflowError, WorkflowKind, WorkflowRun, Workflows};
