//! Object storage for the schools' base archives: S3 multipart uploads whose parts the browser
//! sends straight to storage through presigned URLs, so the bytes never pass through the API.

use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object or the multipart upload does not exist (any more).
    #[error("not found")]
    NotFound,
    /// Storage refused the request as invalid, e.g. a completion with a wrong part ETag.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Storage could not be reached; nothing was changed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// A part already stored in a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub part: u32,
    pub etag: String,
    pub size: u64,
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Starts a multipart upload of `key`; returns its upload id.
    async fn create_multipart(&self, key: &str) -> Result<String, StorageError>;

    /// A URL that accepts one `PUT` of part `part`'s bytes for `expires`.
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        expires: Duration,
    ) -> Result<String, StorageError>;

    /// The parts stored so far, sorted by part number.
    async fn list_parts(&self, key: &str, upload_id: &str)
        -> Result<Vec<StoredPart>, StorageError>;

    /// Assembles the object from `parts` (part number, ETag), in order.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StorageError>;

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError>;

    /// A URL that accepts `GET` of the whole object for `expires`.
    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, StorageError>;

    /// The object's size in bytes.
    async fn size(&self, key: &str) -> Result<u64, StorageError>;

    /// Bytes `start..start + len` of the object (fewer at its end): for reading a ZIP archive's
    /// central directory without downloading the archive.
    async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StorageError>;

    async fn delete(&self, key: &str) -> Result<(), StorageError>;
}
