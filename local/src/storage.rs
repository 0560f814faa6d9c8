//! The local stand-in for S3: an S3-compatible server (`s3s` over `s3s-fs`) kept under
//! `DATA_DIR/storage/`, answering on the local server's own port at the root path (path-style,
//! bucket `bcdi-bases`), while the API answers under `/v1/`. It checks SigV4 signatures and
//! expiry like S3, so the presigned URLs the handlers give out are as real as on AWS; the
//! handlers reach it through the very `S3Storage` adapter that serves AWS.
//!
//! `s3s-fs` 0.14 neither lists the ETags of stored parts nor compares them at completion, and it
//! forgets an upload before it has assembled it: [`Archives`] wraps it to keep each part's ETag
//! beside it, list them sorted, and refuse a wrong or short part before anything is lost, as S3
//! does.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::error_handling::HandleError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bcdi_shared::adapters::s3::S3Storage;
use bcdi_shared::ports::{Storage, StorageError};
use http::{header, HeaderName, Method, StatusCode};
use s3s::auth::SimpleAuth;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateBucketInput, CreateBucketOutput,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput, DeleteObjectOutput,
    ETag, GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput,
    HeadObjectOutput, ListPartsInput, ListPartsOutput, PutObjectInput, PutObjectOutput,
    UploadPartInput, UploadPartOutput,
};
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The bucket of base archives on this machine.
pub const LOCAL_BUCKET: &str = "bcdi-bases";

/// The access key id of the local storage; its secret is generated once per data directory.
pub const LOCAL_ACCESS_KEY: &str = "bcdi-local";

/// Signed into every URL; any valid region will do, as long as client and server agree.
const LOCAL_REGION: &str = "eu-west-3";

/// S3's smallest part, but for the last one of an upload.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The embedded storage: the S3 server to mount at the root path, and the `Storage` adapter
/// that reaches it.
pub struct EmbeddedStorage {
    storage: Arc<S3Storage>,
    router: axum::Router,
}

impl EmbeddedStorage {
    /// Storage kept under `dir` (created if missing), reachable at `endpoint`
    /// (`http://127.0.0.1:PORT`, the origin the server listens on).
    pub fn open(dir: &Path, endpoint: &str) -> Result<Self, StorageError> {
        let objects = dir.join("objects");
        let etags = dir.join("parts");
        for directory in [&objects, &etags, &objects.join(LOCAL_BUCKET)] {
            std::fs::create_dir_all(directory).map_err(|error| {
                unavailable(&format!("creating {}", directory.display()), error)
            })?;
        }
        let secret = load_or_generate_secret(&dir.join("secret"))?;

        let fs = s3s_fs::FileSystem::new(&objects)
            .map_err(|error| StorageError::Unavailable(format!("local storage: {error:?}")))?;
        let mut builder = S3ServiceBuilder::new(Archives { fs, objects, etags });
        builder.set_auth(SimpleAuth::from_single(LOCAL_ACCESS_KEY, secret.as_str()));
        let service = HandleError::new(builder.build(), |error: s3s::HttpError| async move {
            tracing::error!(error = ?error, "local storage failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "local storage failed")
        });
        // The bucket's paths only: anything else on the port is the API's to answer (a JSON
        // 404 for a stray path, not an S3 XML error).
        let bucket = format!("/{LOCAL_BUCKET}");
        let router = axum::Router::new()
            .route_service(&bucket, service.clone())
            .route_service(&format!("{bucket}/"), service.clone())
            .route_service(&format!("{bucket}/{{*key}}"), service)
            .layer(cors());

        let storage = S3Storage::for_endpoint(
            endpoint,
            LOCAL_REGION,
            LOCAL_ACCESS_KEY,
            &secret,
            LOCAL_BUCKET.to_owned(),
        );
        Ok(Self {
            storage: Arc::new(storage),
            router,
        })
    }

    /// The `Storage` port, through the same S3 adapter as on AWS.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// The adapter itself, for tests that need the raw S3 client.
    pub fn s3(&self) -> Arc<S3Storage> {
        self.storage.clone()
    }

    /// The S3 server with its CORS, at the bucket's paths (`/bcdi-bases` and below).
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Storage under `dir` on a loopback port of its own, served until the process ends: for
    /// tests that call the handlers directly, without the local server. Must be called within
    /// a Tokio runtime.
    pub fn spawn(dir: &Path) -> Result<Self, StorageError> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| {
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|error| unavailable("binding a loopback port", error))?;
        let address = listener
            .local_addr()
            .map_err(|error| unavailable("reading the bound address", error))?;
        let storage = Self::open(dir, &format!("http://{address}"))?;
        let router = storage.router();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "local storage server stopped");
            }
        });
        Ok(storage)
    }
}

/// The page `PUT`s parts from the API's origin, which may differ from storage's on AWS; the
/// signature in the URL is the credential (no cookies), so any origin may send, and `ETag`
/// must be readable for the page to complete an upload.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::PUT, Method::HEAD])
        .allow_headers([header::CONTENT_TYPE, header::CONTENT_LENGTH])
        .expose_headers([
            header::ETAG,
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            HeaderName::from_static("x-amz-request-id"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// The storage secret kept in `path`, made on first use: URLs and uploads survive a restart.
fn load_or_generate_secret(path: &Path) -> Result<String, StorageError> {
    match std::fs::read_to_string(path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(unavailable("reading the storage secret", error)),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| StorageError::Unavailable(format!("no random bytes: {error}")))?;
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    write_private(path, &secret)
        .map_err(|error| unavailable("keeping the storage secret", error))?;
    Ok(secret)
}

fn write_private(path: &Path, content: &str) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(content.as_bytes())
}

fn unavailable(what: &str, error: io::Error) -> StorageError {
    StorageError::Unavailable(format!("local storage: {what}: {error}"))
}

/// `s3s-fs` with what S3 does and it does not: part ETags kept and checked.
struct Archives {
    fs: s3s_fs::FileSystem,
    /// The root of `s3s-fs`: one directory per bucket, and its in-progress parts.
    objects: PathBuf,
    /// `<upload id>/<part number>`: each stored part's ETag.
    etags: PathBuf,
}

impl std::fmt::Debug for Archives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archives").finish_non_exhaustive()
    }
}

impl Archives {
    /// The upload's id, if it is one this server handed out and has not finished: its record
    /// is `s3s-fs` 0.14's `.upload-<id>.json`.
    fn live_upload(&self, upload_id: &str) -> S3Result<String> {
        let valid = upload_id.len() == 36
            && upload_id
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() || byte == b'-');
        if valid
            && self
                .objects
                .join(format!(".upload-{upload_id}.json"))
                .is_file()
        {
            Ok(upload_id.to_ascii_lowercase())
        } else {
            Err(s3_error!(
                NoSuchUpload,
                "The specified upload does not exist."
            ))
        }
    }

    /// Where `s3s-fs` 0.14 keeps part `part` of an upload.
    fn part_path(&self, upload_id: &str, part: i32) -> PathBuf {
        self.objects
            .join(format!(".upload_id-{upload_id}.part-{part}"))
    }

    fn etag_path(&self, upload_id: &str, part: i32) -> PathBuf {
        self.etags.join(upload_id).join(part.to_string())
    }

    async fn stored_etag(&self, upload_id: &str, part: i32) -> Option<String> {
        tokio::fs::read_to_string(self.etag_path(upload_id, part))
            .await
            .ok()
    }

    async fn forget_etags(&self, upload_id: &str) {
        let _ = tokio::fs::remove_dir_all(self.etags.join(upload_id)).await;
    }
}

fn internal(what: &str, error: io::Error) -> s3s::S3Error {
    s3_error!(InternalError, "{what}: {error}")
}

#[async_trait::async_trait]
impl S3 for Archives {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.fs.put_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let upload_id = self.live_upload(&req.input.upload_id)?;
        let part = req.input.part_number;
        if !(1..=10_000).contains(&part) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let response = self.fs.upload_part(req).await?;
        if let Some(etag) = &response.output.e_tag {
            let path = self.etag_path(&upload_id, part);
            let directory = self.etags.join(&upload_id);
            tokio::fs::create_dir_all(&directory)
                .await
                .map_err(|error| internal("keeping a part's ETag", error))?;
            // Written aside then renamed, so a reader never sees half an ETag.
            let partial = path.with_extension("partial");
            tokio::fs::write(&partial, etag.value())
                .await
                .map_err(|error| internal("keeping a part's ETag", error))?;
            tokio::fs::rename(&partial, &path)
                .await
                .map_err(|error| internal("keeping a part's ETag", error))?;
        }
        Ok(response)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let upload_id = self.live_upload(&req.input.upload_id)?;
        let mut response = self.fs.list_parts(req).await?;
        let mut parts = response.output.parts.take().unwrap_or_default();
        for part in &mut parts {
            if let Some(number) = part.part_number {
                part.e_tag = self.stored_etag(&upload_id, number).await.map(ETag::Strong);
            }
        }
        // A part whose ETag is not written yet is still being received: not stored.
        parts.retain(|part| part.e_tag.is_some());
        parts.sort_by_key(|part| part.part_number);
        response.output.parts = Some(parts);
        Ok(response)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let upload_id = self.live_upload(&req.input.upload_id)?;
        let given = req
            .input
            .multipart_upload
            .as_ref()
            .and_then(|upload| upload.parts.as_ref())
            .cloned()
            .unwrap_or_default();
        if given.is_empty() {
            return Err(s3_error!(InvalidPart, "You must specify at least one part"));
        }

        // Every check before delegating: s3s-fs forgets the upload before it assembles it.
        for (index, part) in given.iter().enumerate() {
            // S3 allows gaps between part numbers; s3s-fs fails on them after it has dropped
            // the upload, so they are refused here, while nothing is lost.
            let number = part.part_number.unwrap_or(0);
            if usize::try_from(number).ok() != Some(index + 1) {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "Parts must be numbered 1, 2, 3… in ascending order"
                ));
            }
            let stored = self.stored_etag(&upload_id, number).await;
            let matches = match (&stored, &part.e_tag) {
                (Some(stored), Some(given)) => stored.as_str() == given.value(),
                _ => false,
            };
            if !matches {
                return Err(s3_error!(
                    InvalidPart,
                    "Part {number} was not found or its ETag does not match"
                ));
            }
            let size = tokio::fs::metadata(self.part_path(&upload_id, number))
                .await
                .map_err(|_| s3_error!(InvalidPart, "Part {number} was not found"))?
                .len();
            if index + 1 < given.len() && size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Part {number} is smaller than the minimum allowed size"
                ));
            }
        }

        let response = self.fs.complete_multipart_upload(req).await?;
        self.forget_etags(&upload_id).await;
        Ok(response)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let upload_id = self.live_upload(&req.input.upload_id)?;
        let response = self.fs.abort_multipart_upload(req).await?;
        self.forget_etags(&upload_id).await;
        Ok(response)
    }
}
