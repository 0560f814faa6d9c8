//! Uploading bases: upload sessions minted for the Cyberlibrairie's iframe, and the upload API
//! the page calls with the session's token. Archives go straight from the browser to storage
//! as multipart uploads through presigned part URLs; these handlers only start, check, finish
//! and remove them, so the bytes never pass through the API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::body::JsonObject;
use super::{json, messages, ApiError, App, Caller, ErrorCode, Request, Response};
use crate::config::ConfigError;
use crate::domain::base::parse_base_name;
use crate::domain::{Establishment, Instant, ParseError, Rne, Secret, Status};
use crate::ports::uploads::object_key;
use crate::ports::{
    FileState, Started, StorageError, StoreError, StoredPart, UploadFile, UploadSession,
    WorkflowKind, WorkflowRun,
};

/// Upload session tokens start with this: the prefix tells them from keys without a lookup.
pub const UPLOAD_TOKEN_PREFIX: &str = "bcdi_upl";

const MIB: u64 = 1024 * 1024;

/// S3's smallest part (but for the last) and its largest number of parts.
const MIN_PART_SIZE: u64 = 5 * MIB;
const MAX_PARTS: u64 = 10_000;

/// Part URLs one request may ask for: keeps an answer far below Lambda's 6 MB.
const MAX_URLS_PER_REQUEST: usize = 500;

/// The longest session the configuration may ask for: the contract says "a few hours".
const MAX_SESSION_SECONDS: u64 = 12 * 3600;

/// Run names a submit tries, each taken because the one before had already ended, before it
/// answers 503 to be tried again.
const MAX_START_ROUNDS: usize = 5;

/// Upload limits and lifetimes, from the environment.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// `UPLOAD_SESSION_SECONDS`: how long an upload session lasts (default 4 h, at most 12 h).
    pub session_lifetime: Duration,
    /// `UPLOAD_MAX_FILES`: archives an establishment may have at once (default 10).
    pub max_files: usize,
    /// `UPLOAD_MAX_FILE_SIZE`: bytes per archive (default 10 GiB).
    pub max_file_size: u64,
    /// `UPLOAD_PART_SIZE`: the preferred part size in bytes (default 8 MiB, at least 5 MiB).
    pub part_size: u64,
    /// `UPLOAD_PART_URL_SECONDS`: how long a presigned part URL works (default 15 min).
    pub part_url_lifetime: Duration,
    /// Accepted file name extensions, lower case.
    pub extensions: Vec<String>,
    /// `PUBLIC_BASE_URL`: the API's origin as schools reach it, for the session URL; unset:
    /// the origin of the request.
    pub public_base_url: Option<String>,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            session_lifetime: Duration::from_secs(4 * 3600),
            max_files: 10,
            max_file_size: 10 * 1024 * MIB,
            part_size: 8 * MIB,
            part_url_lifetime: Duration::from_secs(15 * 60),
            extensions: vec![".zip".to_owned()],
            public_base_url: None,
        }
    }
}

impl UploadSettings {
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let session = number(lookup, "UPLOAD_SESSION_SECONDS", 4 * 3600)?;
        if !(60..=MAX_SESSION_SECONDS).contains(&session) {
            return Err(ConfigError {
                name: "UPLOAD_SESSION_SECONDS",
                problem: format!("must be between 60 and {MAX_SESSION_SECONDS} seconds"),
            });
        }
        let part_url = number(lookup, "UPLOAD_PART_URL_SECONDS", 15 * 60)?;
        if !(60..=7 * 24 * 3600).contains(&part_url) {
            return Err(ConfigError {
                name: "UPLOAD_PART_URL_SECONDS",
                problem: "must be between 60 seconds and 7 days (S3's limit)".to_owned(),
            });
        }
        let max_files = number(lookup, "UPLOAD_MAX_FILES", 10)?;
        let public_base_url = lookup("PUBLIC_BASE_URL")
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty());
        if let Some(url) = &public_base_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError {
                    name: "PUBLIC_BASE_URL",
                    problem: "must start with https:// (or http:// on a laptop)".to_owned(),
                });
            }
        }
        Ok(Self {
            session_lifetime: Duration::from_secs(session),
            max_files: usize::try_from(max_files.max(1)).unwrap_or(usize::MAX),
            max_file_size: number(lookup, "UPLOAD_MAX_FILE_SIZE", defaults.max_file_size)?.max(1),
            part_size: number(lookup, "UPLOAD_PART_SIZE", defaults.part_size)?,
            part_url_lifetime: Duration::from_secs(part_url),
            extensions: defaults.extensions,
            public_base_url,
        })
    }

    /// The part size of a file of `size` bytes: the smallest multiple of 1 MiB that is at
    /// least the preferred size (and S3's 5 MiB) and keeps the file within 10,000 parts.
    pub fn part_size_for(&self, size: u64) -> u64 {
        let wanted = self.part_size.max(MIN_PART_SIZE);
        let needed = size.div_ceil(MAX_PARTS);
        wanted.max(needed).div_ceil(MIB) * MIB
    }
}

fn number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| ConfigError {
            name,
            problem: format!("must be a whole number, not {value:?}"),
        }),
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => ApiError::not_found("such upload"),
            StorageError::Rejected(reason) => {
                tracing::warn!(%reason, "storage refused a request");
                ApiError::invalid("Storage refused the request: a part is missing or wrong.")
            }
            StorageError::Unavailable(_) => ApiError::unavailable(&error),
        }
    }
}

/// The `file` object of the contract, and which base is exported to e-sidoc.
fn file_view(file: &UploadFile) -> Value {
    json!({
        "id": file.id,
        "name": file.name,
        "base": file.base,
        "size": file.size,
        "part_size": file.part_size,
        "part_count": file.part_count,
        "state": file.state.as_str(),
        "esidoc_export": file.esidoc_export,
    })
}

/// A new file id: 128 random bits, URL- and key-safe.
fn new_file_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's CSPRNG is available");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Only ids of the shape we hand out reach the store.
fn is_file_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The RNE of the path, recorded on the request's log span.
fn parse_rne(raw: &str) -> Result<Rne, ApiError> {
    let rne = Rne::parse(raw).map_err(|error| {
        ApiError::invalid_fields([("rne".to_owned(), error.0)].into())
            .with_message("The RNE/UAI code in the path is not valid.")
    })?;
    tracing::Span::current().record("rne", rne.as_str());
    Ok(rne)
}

fn not_ready(message: &str) -> ApiError {
    ApiError::new(ErrorCode::NotReady, message)
}

impl App {
    /// The establishment and expiry of an upload token's session, or 401; any other
    /// credential is 403 here.
    async fn upload_caller(&self, headers: &HeaderMap) -> Result<(Rne, Instant), ApiError> {
        match self.authenticate(headers).await? {
            Caller::Upload { rne, expires_at } => {
                tracing::Span::current().record("rne", rne.as_str());
                Ok((rne, expires_at))
            }
            _ => Err(ApiError::forbidden()
                .with_message("The upload API takes an upload session token, not a key.")),
        }
    }

    /// The caller of an upload token: `None` if unknown, 401 if its session expired.
    pub(super) async fn upload_session_caller(
        &self,
        token: &Secret,
    ) -> Result<Option<Caller>, ApiError> {
        let Some(session) = self.uploads.find_session(&token.digest()).await? else {
            return Ok(None);
        };
        if session.expires_at <= Instant::now() {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "The upload session expired: open the upload page again for a new one.",
            ));
        }
        Ok(Some(Caller::Upload {
            rne: session.rne,
            expires_at: session.expires_at,
        }))
    }

    async fn establishment_accepting_uploads(&self, rne: &Rne) -> Result<Establishment, ApiError> {
        let establishment = self
            .store
            .get(rne)
            .await?
            .ok_or_else(|| ApiError::not_found("establishment"))?;
        if !establishment.status.accepts_uploads() {
            return Err(not_ready(&format!(
                "Bases can be uploaded in status 2, E2 or 4 only; the establishment is in status {}.",
                establishment.status
            )));
        }
        Ok(establishment)
    }

    /// The file `id` of the caller's establishment; any other is 404, as if absent.
    async fn own_file(&self, rne: &Rne, id: &str) -> Result<UploadFile, ApiError> {
        if !is_file_id(id) {
            return Err(ApiError::not_found("file"));
        }
        self.uploads
            .file(rne, id)
            .await?
            .ok_or_else(|| ApiError::not_found("file"))
    }

    /// `POST /v1/establishments/{rne}/upload-sessions`.
    pub(super) async fn create_upload_session(
        &self,
        request: &Request,
        rne: &str,
    ) -> Result<Response, ApiError> {
        let caller = self.authenticate(request.headers()).await?;
        let rne = parse_rne(rne)?;
        caller.may_read(&rne)?;
        if !request.body().is_empty() {
            JsonObject::parse(request.body(), &[])?.finish()?;
        }
        self.establishment_accepting_uploads(&rne).await?;

        let token = Secret::generate(UPLOAD_TOKEN_PREFIX);
        let expires_at =
            Instant::now().plus_seconds(self.config.uploads.session_lifetime.as_secs());
        let session = UploadSession {
            rne: rne.clone(),
            expires_at,
        };
        self.uploads
            .create_session(&token.digest(), &session)
            .await?;
        tracing::info!(expires_at = %expires_at.rfc3339(), "upload session created");

        // The token travels in the fragment, which browsers never send to a server.
        let url = format!(
            "{}/v1/upload#token={}",
            self.public_base(request.headers()),
            token.expose()
        );
        Ok(json(
            StatusCode::CREATED,
            &json!({ "url": url, "expires_at": expires_at.rfc3339() }),
        ))
    }

    /// The API's origin for links: configured, else the request's own.
    fn public_base(&self, headers: &HeaderMap) -> String {
        if let Some(base) = &self.config.uploads.public_base_url {
            return base.clone();
        }
        let host = headers
            .get(http::header::HOST)
            .and_then(|value| value.to_str().ok())
            .filter(|host| {
                !host.is_empty()
                    && host.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                    })
            });
        let Some(host) = host else {
            // No usable origin: a link relative to the API's.
            return String::new();
        };
        let forwarded = headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .filter(|proto| matches!(*proto, "http" | "https"));
        let loopback = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|local| host == *local || host.starts_with(&format!("{local}:")));
        let scheme = forwarded.unwrap_or(if loopback { "http" } else { "https" });
        format!("{scheme}://{host}")
    }

    /// `GET /v1/upload/session`: what a reloaded page needs to resume, and where the
    /// establishment stands, which the page polls after « Envoyer » to follow the mounting
    /// (the upload token reads nothing else of the establishment).
    pub(super) async fn get_upload_session(&self, request: &Request) -> Result<Response, ApiError> {
        let (rne, expires_at) = self.upload_caller(request.headers()).await?;
        let establishment = self
            .store
            .get(&rne)
            .await?
            .ok_or_else(|| ApiError::not_found("establishment"))?;
        let files = self.uploads.files(&rne).await?;
        let settings = &self.config.uploads;
        Ok(json(
            StatusCode::OK,
            &json!({
                "rne": rne,
                "expires_at": expires_at.rfc3339(),
                "limits": {
                    "max_files": settings.max_files,
                    "max_file_size": settings.max_file_size,
                    "extensions": settings.extensions,
                },
                "files": files.iter().map(file_view).collect::<Vec<_>>(),
                "establishment": progress_view(&establishment, Instant::now()),
            }),
        ))
    }

    /// `POST /v1/upload/files`: starts the upload of one archive, or resumes the one in
    /// progress with the same name, base and size.
    pub(super) async fn create_upload_file(&self, request: &Request) -> Result<Response, ApiError> {
        let (rne, _) = self.upload_caller(request.headers()).await?;
        let new = parse_new_file(request.body(), &self.config.uploads)?;
        self.establishment_accepting_uploads(&rne).await?;

        let files = self.uploads.files(&rne).await?;
        let same = files.iter().find(|file| {
            file.state == FileState::Uploading && file.name == new.name && file.base == new.base
        });
        if let Some(same) = same {
            if same.size == new.size {
                tracing::info!(file = %same.id, "upload resumed");
                return Ok(json(StatusCode::CREATED, &file_view(same)));
            }
        }
        // Another file under the same name replaces the earlier, unfinished one in its place,
        // so the limit is checked only for a file that adds one.
        if same.is_none() && files.len() >= self.config.uploads.max_files {
            return Err(too_many_files(self.config.uploads.max_files));
        }

        let part_size = self.config.uploads.part_size_for(new.size);
        let part_count = u32::try_from(new.size.div_ceil(part_size).max(1)).unwrap_or(u32::MAX);
        let id = new_file_id();
        let key = object_key(&rne, &id);
        let upload_id = self.storage.create_multipart(&key).await?;
        let file = UploadFile {
            id,
            rne: rne.clone(),
            name: new.name,
            base: new.base,
            size: new.size,
            part_size,
            part_count,
            state: FileState::Uploading,
            upload_id,
            created_at: Instant::now(),
            esidoc_export: new.esidoc_export,
        };
        // One store step either way: a refused request leaves every record as it was, and the
        // replaced file's upload is aborted only once nothing points to it any more.
        let stored = match same {
            Some(same) => self.uploads.replace_file(same, &file).await,
            None => {
                self.uploads
                    .add_file(&file, self.config.uploads.max_files)
                    .await
            }
        };
        if let Err(error) = stored {
            self.abort_quietly(&file).await;
            if !matches!(error, StoreError::Conflict) {
                return Err(error.into());
            }
            // Refused: a concurrent request may have started this very file (the store lets
            // one file upload under a name and base), which the same body answers.
            let files = self.uploads.files(&rne).await?;
            let winner = files.iter().find(|other| {
                other.state == FileState::Uploading
                    && other.name == file.name
                    && other.base == file.base
            });
            return match winner {
                Some(winner) if winner.size == file.size => {
                    tracing::info!(file = %winner.id, "upload started by a concurrent request");
                    Ok(json(StatusCode::CREATED, &file_view(winner)))
                }
                Some(_) => Err(replaced_meanwhile()),
                None if same.is_some() => Err(replaced_meanwhile()),
                None => Err(too_many_files(self.config.uploads.max_files)),
            };
        }
        if let Some(same) = same {
            self.abort_quietly(same).await;
            tracing::info!(file = %same.id, by = %file.id, "unfinished upload replaced");
        }
        tracing::info!(file = %file.id, size = file.size, part_count, "upload started");
        Ok(json(StatusCode::CREATED, &file_view(&file)))
    }

    /// Aborts a multipart upload that no record will point to.
    async fn abort_quietly(&self, file: &UploadFile) {
        if let Err(error) = self
            .storage
            .abort_multipart(&file.object_key(), &file.upload_id)
            .await
        {
            tracing::warn!(file = %file.id, %error, "could not abort an orphan upload");
        }
    }

    /// Removes a file: its record, then its upload or archive in storage. The record goes
    /// first and comes back if storage fails, so a 503 leaves the file as it was. Known
    /// shortcoming: a crash between the two leaves the bytes in storage, unlisted, until the
    /// bucket's lifecycle rules remove them.
    async fn remove_file(&self, file: &UploadFile) -> Result<(), ApiError> {
        // Only in the state read: a file completed meanwhile keeps its record and its archive
        // (409) rather than losing the record while its archive is being assembled.
        self.uploads
            .delete_file_in(&file.rne, &file.id, file.state)
            .await?;
        let key = file.object_key();
        let removed = match file.state {
            FileState::Uploading => self.storage.abort_multipart(&key, &file.upload_id).await,
            FileState::Complete => self.storage.delete(&key).await,
        };
        match removed {
            Ok(()) | Err(StorageError::NotFound) => {
                tracing::info!(file = %file.id, state = file.state.as_str(), "upload file removed");
                Ok(())
            }
            Err(error) => {
                if let Err(undo) = self.uploads.add_file(file, usize::MAX).await {
                    tracing::error!(file = %file.id, error = %undo, "a file whose removal failed could not be listed again");
                }
                Err(error.into())
            }
        }
    }

    /// `POST /v1/upload/files/{id}/part-urls`.
    pub(super) async fn create_part_urls(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response, ApiError> {
        let (rne, _) = self.upload_caller(request.headers()).await?;
        let file = self.own_file(&rne, id).await?;
        let parts = parse_part_numbers(request.body(), file.part_count)?;
        self.establishment_accepting_uploads(&rne).await?;
        if file.state != FileState::Uploading {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "This file is complete: it takes no more parts.",
            ));
        }
        let key = file.object_key();
        let mut urls = Vec::with_capacity(parts.len());
        for part in parts {
            let url = self
                .storage
                .presign_part(
                    &key,
                    &file.upload_id,
                    part,
                    self.config.uploads.part_url_lifetime,
                )
                .await?;
            urls.push(json!({ "part": part, "url": url }));
        }
        Ok(json(StatusCode::OK, &json!({ "urls": urls })))
    }

    /// `GET /v1/upload/files/{id}/parts`: the parts storage holds, to resume.
    pub(super) async fn list_upload_parts(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response, ApiError> {
        let (rne, _) = self.upload_caller(request.headers()).await?;
        let file = self.own_file(&rne, id).await?;
        if file.state != FileState::Uploading {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "This file is complete: there is nothing to resume.",
            ));
        }
        let parts = self
            .storage
            .list_parts(&file.object_key(), &file.upload_id)
            .await?;
        let parts: Vec<Value> = parts
            .iter()
            .map(|part| json!({ "part": part.part, "etag": part.etag, "size": part.size }))
            .collect();
        Ok(json(StatusCode::OK, &json!({ "parts": parts })))
    }

    /// `POST /v1/upload/files/{id}/complete`: checks every part, then lets storage assemble
    /// the archive. A completed file asked again is answered as is.
    pub(super) async fn complete_upload_file(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response, ApiError> {
        let (rne, _) = self.upload_caller(request.headers()).await?;
        let file = self.own_file(&rne, id).await?;
        let given = parse_completed_parts(request.body())?;
        let key = file.object_key();
        if file.state == FileState::Complete && self.archive_is_stored(&key).await? {
            // A repeated completion: answered as the first one was.
            return Ok(json(StatusCode::OK, &file_view(&file)));
        }
        self.establishment_accepting_uploads(&rne).await?;

        let stored = match self.storage.list_parts(&key, &file.upload_id).await {
            Ok(stored) => stored,
            // Storage assembled it, but the answer was lost before the record said so.
            Err(StorageError::NotFound) if self.archive_is_stored(&key).await? => {
                match self.uploads.complete_file(&rne, &file.id).await {
                    Ok(()) | Err(StoreError::Conflict) => {}
                    Err(error) => return Err(error.into()),
                }
                let file = UploadFile {
                    state: FileState::Complete,
                    ..file
                };
                return Ok(json(StatusCode::OK, &file_view(&file)));
            }
            Err(error) => return Err(error.into()),
        };
        let parts = check_parts(&file, &given, &stored)?;
        // The record first, undone if storage fails: a 503 leaves the file uploading.
        let marked = match file.state {
            FileState::Complete => false,
            FileState::Uploading => match self.uploads.complete_file(&rne, &file.id).await {
                Ok(()) => true,
                // Another request is completing it at the same time, or removed it: then the
                // upload is being aborted, and assembling it would leave an unlisted archive.
                Err(StoreError::Conflict) => match self.uploads.file(&rne, &file.id).await? {
                    Some(_) => false,
                    None => return Err(ApiError::not_found("file")),
                },
                Err(error) => return Err(error.into()),
            },
        };
        if let Err(error) = self
            .storage
            .complete_multipart(&key, &file.upload_id, &parts)
            .await
        {
            // The upload is gone because the archive is assembled (a concurrent completion).
            let done = matches!(error, StorageError::NotFound)
                && matches!(self.archive_is_stored(&key).await, Ok(true));
            if !done {
                if marked {
                    if let Err(undo) = self.uploads.reopen_file(&rne, &file.id).await {
                        tracing::error!(file = %file.id, error = %undo, "a file whose completion failed could not be reopened");
                    }
                }
                return Err(error.into());
            }
        }
        tracing::info!(file = %file.id, size = file.size, "upload complete");
        let file = UploadFile {
            state: FileState::Complete,
            ..file
        };
        Ok(json(StatusCode::OK, &file_view(&file)))
    }

    /// Whether storage holds the assembled archive at `key`.
    async fn archive_is_stored(&self, key: &str) -> Result<bool, ApiError> {
        match self.storage.size(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// `DELETE /v1/upload/files/{id}`: aborts the upload, or removes the archive.
    pub(super) async fn delete_upload_file(
        &self,
        request: &Request,
        id: &str,
    ) -> Result<Response, ApiError> {
        let (rne, _) = self.upload_caller(request.headers()).await?;
        let file = self.own_file(&rne, id).await?;
        self.establishment_accepting_uploads(&rne).await?;
        // Marked complete but not yet in storage: a completion is assembling it. Removing the
        // record now would let the archive land unlisted, so the removal waits for it.
        if file.state == FileState::Complete && !self.archive_is_stored(&file.object_key()).await? {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "This archive is still being assembled: try again in a moment.",
            ));
        }
        self.remove_file(&file).await?;
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = StatusCode::NO_CONTENT;
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        Ok(response)
    }

    /// `POST /v1/upload/submit`: starts mounting the complete archives, exactly once.
    pub(super) async fn submit_upload(&self, request: &Request) -> Result<Response, ApiError> {
        let (rne, _) = self.upload_caller(request.headers()).await?;
        if !request.body().is_empty() {
            JsonObject::parse(request.body(), &[])?.finish()?;
        }
        let establishment = self.establishment_accepting_uploads(&rne).await?;
        let files = self.uploads.files(&rne).await?;
        if files.iter().any(|file| file.state == FileState::Uploading) {
            return Err(not_ready(
                "A file is still being uploaded: finish or cancel it before sending.",
            ));
        }
        let complete: Vec<&UploadFile> = files
            .iter()
            .filter(|file| file.state == FileState::Complete)
            .collect();
        if complete.is_empty() {
            return Err(not_ready(
                "No archive was uploaded: there is nothing to send.",
            ));
        }

        let exported = exported_base(&complete);
        let input_files: Vec<Value> = complete
            .iter()
            .map(|file| {
                json!({
                    "id": file.id,
                    "name": file.name,
                    "base": file.base,
                    "size": file.size,
                    "esidoc_export": file.id == exported,
                })
            })
            .collect();
        let run = self
            .start_mounting(&establishment, json!({ "files": input_files }))
            .await?;
        tracing::info!(workflow = %run.name(), files = complete.len(), "mounting started");

        let at = Instant::now().plus_seconds(self.config.mount_eta.as_secs());
        Ok(json(
            StatusCode::ACCEPTED,
            &json!({
                "status": Status::Mounting,
                "timestamp": at.unix(),
                "next_step_at": at.rfc3339(),
            }),
        ))
    }
}

impl App {
    /// Starts the mounting run the school's submit names. The attempt names the run: a second
    /// submit before the workflow moves the status to 3 names the same run, which the engine
    /// starts once. A run of that name may also have ended before its first step recorded its
    /// attempt (it failed for good): its name can never run again, so the attempt is counted
    /// as used in the store, as an operator's retry counts it, and the next one is started.
    async fn start_mounting(
        &self,
        establishment: &Establishment,
        input: Value,
    ) -> Result<WorkflowRun, ApiError> {
        let kind = WorkflowKind::Mounting;
        let rne = &establishment.rne;
        let mut seen = establishment.clone();
        for _ in 0..MAX_START_ROUNDS {
            let retried = self.store.retried_attempt(rne, kind).await?;
            let run = WorkflowRun {
                kind,
                rne: rne.clone(),
                attempt: seen.mounting_attempt.max(retried) + 1,
            };
            if self.workflows.start(&run, input.clone()).await? == Started::Running {
                return Ok(run);
            }
            tracing::warn!(workflow = %run.name(), "a run of that name has ended: taking the next attempt");
            match self
                .store
                .accept_retry(&seen, kind, retried, run.attempt)
                .await
            {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(error) => return Err(error.into()),
            }
            // Read again what the store holds now: the accepted attempt, or the write that won.
            seen = self.establishment_accepting_uploads(rne).await?;
        }
        Err(ApiError::unavailable(
            &"mounting runs kept ending before they started",
        ))
    }
}

/// The establishment as the upload page follows it: the fields of `GET /v1/establishments/{rne}`
/// that concern the school's bases, without the licence or the connection (which is for the
/// Cyberlibrairie). `status_changed_at` lets the page tell a new outcome from the one before
/// its submit.
fn progress_view(establishment: &Establishment, now: Instant) -> Value {
    let next = establishment
        .next_step_at
        .filter(|_| establishment.status.has_next_step());
    let mut body = json!({
        "status": establishment.status,
        "timestamp": next.map(Instant::unix),
        "next_step_at": next.map(Instant::rfc3339),
        "status_changed_at": establishment.status_changed_at.rfc3339(),
        "message": messages::for_school(establishment, now),
        "bases": establishment.bases,
    });
    if let (Status::InstallFailed | Status::MountFailed, Some(failure)) =
        (establishment.status, &establishment.failure)
    {
        body["error"] = json!({
            "code": establishment.status,
            "reason": failure.reason,
            "detail": failure.detail,
        });
    }
    body
}

fn too_many_files(max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("An establishment may have at most {max} archives: remove one first."),
    )
}

/// The unfinished file a new one was to replace was changed (completed, removed or replaced)
/// by another request meanwhile: nothing was done, the page may try again.
fn replaced_meanwhile() -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        "Another request changed this archive meanwhile: nothing was done, try again.",
    )
}

/// The file exported to e-sidoc: the one marked, else the base named "Principale", else the
/// oldest.
fn exported_base(files: &[&UploadFile]) -> String {
    files
        .iter()
        .find(|file| file.esidoc_export)
        .or_else(|| {
            files
                .iter()
                .find(|file| file.base.to_lowercase() == "principale")
        })
        .or_else(|| files.first())
        .map(|file| file.id.clone())
        .unwrap_or_default()
}

struct NewFile {
    name: String,
    base: String,
    size: u64,
    esidoc_export: bool,
}

/// The file name on the school's computer: 1 to 255 characters, no path, one of the accepted
/// extensions.
fn parse_file_name(input: &str, extensions: &[String]) -> Result<String, ParseError> {
    let name = input.trim();
    let chars = name.chars().count();
    if !(1..=255).contains(&chars) {
        return Err(ParseError::new("must be 1 to 255 characters"));
    }
    if name.chars().any(char::is_control) || name.contains(['/', '\\']) {
        return Err(ParseError::new(
            "must not contain control characters or slashes",
        ));
    }
    let lower = name.to_lowercase();
    if !extensions
        .iter()
        .any(|extension| lower.len() > extension.len() && lower.ends_with(extension.as_str()))
    {
        return Err(ParseError::new(format!(
            "must be an archive of type {}",
            extensions.join(", ")
        )));
    }
    Ok(name.to_owned())
}

/// The body's JSON, read a second time for the fields `JsonObject` does not read (numbers and
/// arrays); `JsonObject::parse` has already refused anything but a small object.
fn raw_fields(body: &[u8]) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    }
}

/// `JsonObject::finish`'s wrong fields with `extra` added: one 400 names them all.
fn finish_with(object: JsonObject, extra: BTreeMap<String, String>) -> Result<(), ApiError> {
    let mut fields = match object.finish() {
        Ok(()) => BTreeMap::new(),
        Err(error) if !error.fields.is_empty() => error.fields,
        Err(error) => return Err(error),
    };
    fields.extend(extra);
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(fields))
    }
}

fn parse_new_file(body: &[u8], settings: &UploadSettings) -> Result<NewFile, ApiError> {
    let mut object = JsonObject::parse(body, &["name", "size", "base", "esidoc_export"])?;
    let name = object.required("name", |name| parse_file_name(name, &settings.extensions));
    let base = object.required("base", parse_base_name);
    let esidoc_export = object.optional_bool("esidoc_export", false);
    let mut extra = BTreeMap::new();
    let size = match raw_fields(body).get("size") {
        None | Some(Value::Null) => {
            extra.insert("size".to_owned(), "is required".to_owned());
            None
        }
        Some(value) => match value.as_u64() {
            Some(size) if size >= 1 => Some(size),
            _ => {
                extra.insert(
                    "size".to_owned(),
                    "must be a whole number of bytes, at least 1".to_owned(),
                );
                None
            }
        },
    };
    finish_with(object, extra)?;
    let (Some(name), Some(base), Some(size), Some(esidoc_export)) =
        (name, base, size, esidoc_export)
    else {
        return Err(ApiError::invalid("The request body has invalid fields."));
    };
    if size > settings.max_file_size {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "An archive may have at most {} bytes; this one has {size}.",
                settings.max_file_size
            ),
        ));
    }
    Ok(NewFile {
        name,
        base,
        size,
        esidoc_export,
    })
}

/// `{"parts": [1, 2, 3]}`: distinct part numbers of the file, in order.
fn parse_part_numbers(body: &[u8], part_count: u32) -> Result<Vec<u32>, ApiError> {
    let object = JsonObject::parse(body, &["parts"])?;
    let mut extra = BTreeMap::new();
    let mut parts = BTreeSet::new();
    match raw_fields(body).get("parts") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_URLS_PER_REQUEST => {
            for item in items {
                match item.as_u64().and_then(|part| u32::try_from(part).ok()) {
                    Some(part) if (1..=part_count).contains(&part) => {
                        parts.insert(part);
                    }
                    _ => {
                        extra.insert(
                            "parts".to_owned(),
                            format!("must hold part numbers from 1 to {part_count}"),
                        );
                    }
                }
            }
        }
        _ => {
            extra.insert(
                "parts".to_owned(),
                format!("must be a list of 1 to {MAX_URLS_PER_REQUEST} part numbers"),
            );
        }
    }
    finish_with(object, extra)?;
    Ok(parts.into_iter().collect())
}

/// `{"parts": [{"part": 1, "etag": "…"}]}`, as given.
fn parse_completed_parts(body: &[u8]) -> Result<Vec<(u64, String)>, ApiError> {
    let object = JsonObject::parse(body, &["parts"])?;
    let mut extra = BTreeMap::new();
    let mut parts = Vec::new();
    let wrong = "must be a list of {\"part\": <number>, \"etag\": \"<ETag>\"}";
    match raw_fields(body).get("parts") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_PARTS as usize => {
            for item in items {
                let entry = item.as_object().and_then(|entry| {
                    let known = entry.keys().all(|key| key == "part" || key == "etag");
                    let part = entry.get("part")?.as_u64()?;
                    let etag = entry.get("etag")?.as_str()?;
                    (known && !etag.trim().is_empty() && etag.len() <= 200)
                        .then(|| (part, etag.to_owned()))
                });
                match entry {
                    Some(entry) => parts.push(entry),
                    None => {
                        extra.insert("parts".to_owned(), wrong.to_owned());
                    }
                }
            }
        }
        _ => {
            extra.insert("parts".to_owned(), wrong.to_owned());
        }
    }
    finish_with(object, extra)?;
    Ok(parts)
}

/// Every part of `file` given once, with the ETag and size storage holds for it; the parts to
/// complete with, or a 400 that names each wrong one.
fn check_parts(
    file: &UploadFile,
    given: &[(u64, String)],
    stored: &[StoredPart],
) -> Result<Vec<(u32, String)>, ApiError> {
    let mut problems: BTreeMap<u64, String> = BTreeMap::new();
    let mut by_number: BTreeMap<u64, &str> = BTreeMap::new();
    for (part, etag) in given {
        if !(1..=u64::from(file.part_count)).contains(part) {
            problems.insert(
                *part,
                format!("is not a part of this file (1 to {})", file.part_count),
            );
        } else if by_number.insert(*part, etag).is_some() {
            problems.insert(*part, "is given more than once".to_owned());
        }
    }
    let last_size = file.size.saturating_sub(
        file.part_size
            .saturating_mul(u64::from(file.part_count.saturating_sub(1))),
    );
    let mut parts = Vec::new();
    for number in 1..=file.part_count {
        let key = u64::from(number);
        let Some(etag) = by_number.get(&key) else {
            problems
                .entry(key)
                .or_insert_with(|| "is missing from the list".to_owned());
            continue;
        };
        let Some(stored) = stored.iter().find(|part| part.part == number) else {
            problems.insert(key, "was not uploaded".to_owned());
            continue;
        };
        let bare = |etag: &str| {
            etag.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_owned()
        };
        if bare(etag) != bare(&stored.etag) {
            problems.insert(
                key,
                "has an ETag that does not match the stored part".to_owned(),
            );
            continue;
        }
        let expected = if number == file.part_count {
            last_size
        } else {
            file.part_size
        };
        if stored.size != expected {
            problems.insert(
                key,
                format!("has {} bytes where {expected} were expected", stored.size),
            );
            continue;
        }
        parts.push((number, stored.etag.clone()));
    }
    if problems.is_empty() {
        return Ok(parts);
    }
    let numbers: Vec<String> = problems.keys().map(u64::to_string).collect();
    let detail: Vec<String> = problems
        .iter()
        .map(|(part, problem)| format!("part {part} {problem}"))
        .collect();
    let mut error = ApiError::invalid(format!(
        "The upload cannot be completed: part {} {}.",
        numbers.join(", "),
        if numbers.len() == 1 {
            "is wrong"
        } else {
            "are wrong"
        }
    ));
    error.fields = [("parts".to_owned(), detail.join("; "))].into();
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> UploadSettings {
        UploadSettings::default()
    }

    #[test]
    fn part_size_is_the_preferred_size_for_ordinary_archives() {
        assert_eq!(settings().part_size_for(1), 8 * MIB);
        assert_eq!(settings().part_size_for(10 * 1024 * MIB), 8 * MIB);
    }

    #[test]
    fn part_size_grows_in_whole_mib_to_stay_within_10000_parts() {
        let size = 100 * 1024 * MIB;
        let part = settings().part_size_for(size);
        assert_eq!(part % MIB, 0);
        assert!(size.div_ceil(part) <= MAX_PARTS);
        assert!(size.div_ceil(part - MIB) > MAX_PARTS);
    }

    #[test]
    fn part_size_is_never_below_5_mib() {
        let small = UploadSettings {
            part_size: MIB,
            ..settings()
        };
        assert_eq!(small.part_size_for(50 * MIB), 5 * MIB);
        let odd = UploadSettings {
            part_size: 6 * MIB + 1,
            ..settings()
        };
        assert_eq!(odd.part_size_for(50 * MIB), 7 * MIB);
    }

    #[test]
    fn file_names_need_an_accepted_extension_in_any_case() {
        let zip = [".zip".to_owned()];
        assert!(parse_file_name("data.zip", &zip).is_ok());
        assert!(parse_file_name("DATA.ZIP", &zip).is_ok());
        for bad in ["data.rar", ".zip", "", "a/b.zip", "data.zip.exe"] {
            assert!(parse_file_name(bad, &zip).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_lifetimes_beyond_a_few_hours_are_refused() {
        let lookup = |name: &str| (name == "UPLOAD_SESSION_SECONDS").then(|| "86400".to_owned());
        assert!(UploadSettings::from_lookup(&lookup).is_err());
        let defaults = UploadSettings::from_lookup(&|_: &str| None).unwrap();
        assert_eq!(defaults.session_lifetime, Duration::from_secs(4 * 3600));
        assert_eq!(defaults.max_files, 10);
    }
}
