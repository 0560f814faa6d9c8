//! What the service needs from the outside world, as small traits. Each has an AWS adapter in
//! `adapters/` and an embedded one in the `bcdi-hosting` crate; both pass the same test suite.

pub mod jobs;
pub mod notifications;
pub mod storage;
pub mod store;
pub mod uploads;
pub mod workflows;

pub use jobs::{Job, JobKind, JobState, JobStore, Lease, NewJob};
pub use notifications::{AfterFailure, Delivery, DeliveryState, Notification, NotificationStore};
pub use storage::{Storage, StorageError, StoredPart};
pub use store::{EstablishmentStore, Page, StoreError};
pub use uploads::{FileState, UploadFile, UploadSession, UploadStore};
pub use workflows::{Started, TaskTokenError, WorkflowError, WorkflowKind, WorkflowRun, Workflows};
