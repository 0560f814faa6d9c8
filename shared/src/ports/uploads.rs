//! Keeping upload sessions and the archives a school uploads through them.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Digest, Instant, Rne};

/// A session minted for one establishment's upload page; its token is kept as a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    pub rne: Rne,
    pub expires_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Parts are being sent to storage.
    Uploading,
    /// Storage assembled the archive.
    Complete,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Uploading => "uploading",
            FileState::Complete => "complete",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        match input {
            "uploading" => Some(FileState::Uploading),
            "complete" => Some(FileState::Complete),
            _ => None,
        }
    }
}

/// One archive of an establishment, as uploaded to `bases/<rne>/<id>.zip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFile {
    /// Random, URL-safe; names the object in storage.
    pub id: String,
    pub rne: Rne,
    /// The file name on the school's computer, e.g. `data.zip`.
    pub name: String,
    /// The base it holds, e.g. `Principale`.
    pub base: String,
    pub size: u64,
    pub part_size: u64,
    pub part_count: u32,
    pub state: FileState,
    /// The storage's multipart upload id: never shown to the school.
    pub upload_id: String,
    pub created_at: Instant,
    /// Whether this base is the one exported to e-sidoc. Read only: set through
    /// [`UploadStore::add_file`], at most one file of an establishment at a time.
    pub esidoc_export: bool,
}

impl UploadFile {
    /// Where the archive is kept: nothing of another establishment shares its prefix.
    pub fn object_key(&self) -> String {
        object_key(&self.rne, &self.id)
    }
}

/// `bases/<RNE>/<file id>.zip`.
pub fn object_key(rne: &Rne, id: &str) -> String {
    format!("bases/{rne}/{id}.zip")
}

#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Stores a session under its token's digest until `expires_at` (and a while after: an
    /// expired session is still recognised, to say so).
    async fn create_session(
        &self,
        token: &Digest,
        session: &UploadSession,
    ) -> Result<(), StoreError>;

    async fn find_session(&self, token: &Digest) -> Result<Option<UploadSession>, StoreError>;

    /// The establishment's files, oldest first.
    async fn files(&self, rne: &Rne) -> Result<Vec<UploadFile>, StoreError>;

    async fn file(&self, rne: &Rne, id: &str) -> Result<Option<UploadFile>, StoreError>;

    /// Adds `file` if the establishment has fewer than `max_files` files and, if `file` is
    /// uploading, no other file uploading under the same name and base, atomically, else
    /// `Conflict`; `AlreadyExists` if its id is taken. With `file.esidoc_export`, it becomes
    /// the establishment's exported base, in place of any other.
    async fn add_file(&self, file: &UploadFile, max_files: usize) -> Result<(), StoreError>;

    /// Puts `new` in the place of `old` in one step, if `old` is still there, uploading, with
    /// the same multipart upload; `Conflict` otherwise (removed, completed or replaced
    /// meanwhile) or if another file uploads under `new`'s name and base, `AlreadyExists` if
    /// `new`'s id is taken, and then nothing changed. The count
    /// of files stays, so a replacement never meets the limit and never frees a place another
    /// request could take. With `new.esidoc_export`, `new` becomes the exported base.
    async fn replace_file(&self, old: &UploadFile, new: &UploadFile) -> Result<(), StoreError>;

    /// Marks the file complete if it is still uploading; `Conflict` otherwise (or if absent).
    async fn complete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError>;

    /// Marks the file uploading again if it is complete; `Conflict` otherwise (or if absent).
    /// Undoes `complete_file` when storage then fails to assemble the archive.
    async fn reopen_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError>;

    /// Removes the file; removing an absent file succeeds.
    async fn delete_file(&self, rne: &Rne, id: &str) -> Result<(), StoreError>;

    /// Removes the file if it is still in `state`, `Conflict` if it is in another (completed
    /// or reopened meanwhile); removing an absent file succeeds. Makes a removal and a
    /// completion of the same file exclusive: whichever changes the record first wins.
    async fn delete_file_in(&self, rne: &Rne, id: &str, state: FileState)
        -> Result<(), StoreError>;
}
