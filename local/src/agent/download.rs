//! Downloading an archive from its presigned URL to disk, in a stream, holding it to the size
//! the upload announced. A URL carries a signature: it is never logged, nor put in an error.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::jobs::{Failure, Sensitive};

/// Attempts at a download that failed on the way (network, 5xx) before the job fails.
const ATTEMPTS: u32 = 3;

#[derive(Debug)]
pub enum DownloadError {
    /// The server refused, or the connection failed every time.
    Failed(String),
    /// The bytes are not as many as announced.
    SizeMismatch { expected: u64, actual: String },
    /// The file could not be written here.
    Local(String),
}

impl DownloadError {
    /// The job's failure, naming the base and the file.
    pub fn failure(&self, base: &str, file: &str) -> Failure {
        match self {
            DownloadError::Failed(why) => Failure::new(
                "download_failed",
                format!("{file} ({base}) could not be downloaded: {why}."),
            ),
            DownloadError::SizeMismatch { expected, actual } => Failure::new(
                "size_mismatch",
                format!("{file} ({base}) should be {expected} bytes but is {actual}."),
            ),
            DownloadError::Local(why) => Failure::new(
                "agent_storage_failed",
                format!("{file} ({base}) could not be written on the host: {why}."),
            ),
        }
    }
}

/// A client for downloads: no overall timeout (archives take minutes), but a stalled
/// transfer ends.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|error| format!("cannot build the download client: {error}"))
}

/// Downloads `url` to `path`, which must then hold exactly `expected` bytes.
pub async fn download(
    http: &reqwest::Client,
    url: &Sensitive,
    expected: u64,
    path: &Path,
) -> Result<(), DownloadError> {
    let mut attempt = 1;
    loop {
        match once(http, url, expected, path).await {
            Err(DownloadError::Failed(why)) if attempt < ATTEMPTS => {
                tracing::warn!(attempt, error = %why, "download failed; trying again");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

async fn once(
    http: &reqwest::Client,
    url: &Sensitive,
    expected: u64,
    path: &Path,
) -> Result<(), DownloadError> {
    let failed = |error: reqwest::Error| DownloadError::Failed(error.without_url().to_string());
    let mut response = http.get(url.expose()).send().await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(DownloadError::Failed(format!("HTTP {}", status.as_u16())));
    }
    if let Some(announced) = response.content_length() {
        if announced != expected {
            return Err(DownloadError::SizeMismatch {
                expected,
                actual: format!("{announced} bytes according to storage"),
            });
        }
    }

    let local = |error: std::io::Error| DownloadError::Local(error.to_string());
    let mut file = tokio::fs::File::create(path).await.map_err(local)?;
    let mut written: u64 = 0;
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        written += chunk.len() as u64;
        // Stop as soon as it is too long: never fill the disk past what was announced.
        if written > expected {
            return Err(DownloadError::SizeMismatch {
                expected,
                actual: "longer".to_owned(),
            });
        }
        file.write_all(&chunk).await.map_err(local)?;
    }
    file.flush().await.map_err(local)?;
    file.sync_all().await.map_err(local)?;
    if written != expected {
        return Err(DownloadError::SizeMismatch {
            expected,
            actual: format!("{written} bytes"),
        });
    }
    Ok(())
}
