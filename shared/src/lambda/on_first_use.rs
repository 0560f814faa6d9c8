//! An adapter built at its first use instead of at init, once, then shared like the others.
//!
//! A function builds at init the AWS clients its endpoints call (see `lambda::Needs`): each
//! client costs a few tenths of a millisecond of cold start, about a tenth of the Lambda
//! runtime's own start. The ports its endpoints do not call still need an adapter in the `App`;
//! they get this one, so that a handler that calls one all the same (an endpoint whose needs
//! changed) works as before and only pays that client's construction on that request.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::ports::{
    Started, Storage, StorageError, StoredPart, TaskTokenError, WorkflowError, WorkflowRun,
    Workflows,
};

/// `T`, built by `build` the first time a method is called.
pub struct OnFirstUse<T> {
    adapter: OnceLock<T>,
    build: Box<dyn Fn() -> T + Send + Sync>,
}

impl<T> OnFirstUse<T> {
    pub fn new(build: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Self {
            adapter: OnceLock::new(),
            build: Box::new(build),
        }
    }

    /// The adapter, built now if it was not yet.
    pub fn get(&self) -> &T {
        self.adapter.get_or_init(|| {
            tracing::debug!("AWS client built at first use");
            (self.build)()
        })
    }

    /// Whether the adapter was built.
    pub fn is_built(&self) -> bool {
        self.adapter.get().is_some()
    }
}

#[async_trait]
impl<T: Storage> Storage for OnFirstUse<T> {
    async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        self.get().create_multipart(key).await
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        expires: Duration,
    ) -> Result<String, StorageError> {
        self.get().presign_part(key, upload_id, part, expires).await
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, StorageError> {
        self.get().list_parts(key, upload_id).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StorageError> {
        self.get().complete_multipart(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.get().abort_multipart(key, upload_id).await
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, StorageError> {
        self.get().presign_get(key, expires).await
    }

    async fn size(&self, key: &str) -> Result<u64, StorageError> {
        self.get().size(key).await
    }

    async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        self.get().read_range(key, start, len).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.get().delete(key).await
    }
}

#[async_trait]
impl<T: Workflows> Workflows for OnFirstUse<T> {
    async fn start(&self, run: &WorkflowRun, input: Value) -> Result<Started, WorkflowError> {
        self.get().start(run, input).await
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), TaskTokenError> {
        self.get().send_task_success(token, output).await
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), TaskTokenError> {
        self.get().send_task_failure(token, error, cause).await
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), TaskTokenError> {
        self.get().send_task_heartbeat(token).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_adapter_is_built_at_its_first_use_and_only_then() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&builds);
        let lazy = OnFirstUse::new(move || counted.fetch_add(1, Ordering::SeqCst) + 1);
        assert!(!lazy.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 0);
        assert_eq!(*lazy.get(), 1);
        assert_eq!(*lazy.get(), 1);
        assert!(lazy.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }
}
