//! Where an archive's bytes come from, read by ranges: an object in storage (the check runs
//! in a Lambda and must not download gigabytes), a local file (the hosting agent checks what
//! it downloaded), or bytes in memory (tests and fuzzing).

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use async_trait::async_trait;

use crate::ports::{Storage, StorageError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The archive does not exist (any more).
    #[error("the archive does not exist")]
    NotFound,
    /// It could not be read right now; a later attempt may work.
    #[error("the archive could not be read: {0}")]
    Unavailable(String),
}

/// Bytes readable by range.
#[async_trait]
pub trait RangeSource: Send + Sync {
    async fn size(&self) -> Result<u64, SourceError>;

    /// Bytes `start..start + len`; the check only asks for ranges inside `size()`.
    async fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, SourceError>;
}

/// One object of a [`Storage`].
pub struct StorageObject<'a, S: ?Sized> {
    pub storage: &'a S,
    pub key: &'a str,
}

impl From<StorageError> for SourceError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => SourceError::NotFound,
            other => SourceError::Unavailable(other.to_string()),
        }
    }
}

#[async_trait]
impl<S: Storage + ?Sized> RangeSource for StorageObject<'_, S> {
    async fn size(&self) -> Result<u64, SourceError> {
        Ok(self.storage.size(self.key).await?)
    }

    async fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        Ok(self.storage.read_range(self.key, start, len).await?)
    }
}

/// A file on this machine.
pub struct LocalFile {
    pub path: PathBuf,
}

impl LocalFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

fn io_error(error: std::io::Error) -> SourceError {
    match error.kind() {
        std::io::ErrorKind::NotFound => SourceError::NotFound,
        _ => SourceError::Unavailable(error.to_string()),
    }
}

#[async_trait]
impl RangeSource for LocalFile {
    async fn size(&self) -> Result<u64, SourceError> {
        let path = self.path.clone();
        blocking(move || Ok(std::fs::metadata(path).map_err(io_error)?.len())).await
    }

    async fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        let path = self.path.clone();
        blocking(move || {
            let mut file = std::fs::File::open(path).map_err(io_error)?;
            file.seek(SeekFrom::Start(start)).map_err(io_error)?;
            // `take` bounds the allocation by what the file really holds, not by `len`.
            let mut bytes = Vec::new();
            file.take(len).read_to_end(&mut bytes).map_err(io_error)?;
            Ok(bytes)
        })
        .await
    }
}

/// File reads block; a runtime worker must not.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| SourceError::Unavailable(format!("file read task: {error}")))?
}

/// Bytes in memory.
#[async_trait]
impl RangeSource for [u8] {
    async fn size(&self) -> Result<u64, SourceError> {
        Ok(self.len() as u64)
    }

    async fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(self.len());
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .unwrap_or(usize::MAX)
            .min(self.len());
        Ok(self[start..end].to_vec())
    }
}

#[async_trait]
impl RangeSource for Vec<u8> {
    async fn size(&self) -> Result<u64, SourceError> {
        self.as_slice().size().await
    }

    async fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        self.as_slice().read(start, len).await
    }
}
