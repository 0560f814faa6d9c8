//! `Storage` on S3: multipart uploads whose parts the browser `PUT`s to presigned URLs, ranged
//! reads for checking archives. The same code serves AWS, moto and the local server's embedded
//! S3-compatible storage: only the endpoint and the credentials differ.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};

use crate::ports::{Storage, StorageError, StoredPart};

/// Error codes of S3 that mean "no such thing": the object or the upload is gone.
const NOT_FOUND_CODES: [&str; 4] = ["NoSuchKey", "NoSuchUpload", "NotFound", "NoSuchBucket"];

/// Error codes of S3 that refuse a request as invalid rather than fail to serve it.
const REJECTED_CODES: [&str; 5] = [
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "InvalidRange",
    "InvalidArgument",
];

pub struct S3Storage {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Storage {
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { client, bucket }
    }

    /// The storage of the AWS configuration `aws` (region, credentials, and an endpoint URL if
    /// one is configured, e.g. `AWS_ENDPOINT_URL` for moto), on bucket `bucket`.
    pub fn from_aws_config(aws: &aws_config::SdkConfig, bucket: String) -> Self {
        // An S3-compatible endpoint other than AWS rarely resolves bucket subdomains.
        let path_style = aws.endpoint_url().is_some();
        let config = aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self::new(aws_sdk_s3::Client::from_conf(config), bucket)
    }

    /// The storage of an S3-compatible server at `endpoint` (`http://127.0.0.1:PORT`), with
    /// static credentials, path-style URLs, on bucket `bucket`.
    pub fn for_endpoint(
        endpoint: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
        bucket: String,
    ) -> Self {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(Credentials::new(
                access_key, secret_key, None, None, "static",
            ))
            .endpoint_url(endpoint)
            .force_path_style(true)
            // Checksums would add signed headers a browser's plain `PUT` does not send.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self::new(aws_sdk_s3::Client::from_conf(config), bucket)
    }

    /// Creates the bucket, for tests and local tooling (`template.yaml` creates it on AWS).
    pub async fn create_bucket(&self) -> Result<(), StorageError> {
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        let region = self
            .client
            .config()
            .region()
            .map(|region| region.to_string());
        if let Some(region) = region.filter(|region| region != "us-east-1") {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        request
            .send()
            .await
            .map_err(|error| storage_error("CreateBucket", error))?;
        Ok(())
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }
}

fn presigning(expires: Duration) -> Result<PresigningConfig, StorageError> {
    PresigningConfig::expires_in(expires)
        .map_err(|error| StorageError::Rejected(format!("presigning: {error}")))
}

fn part_number(part: u32) -> Result<i32, StorageError> {
    match i32::try_from(part) {
        Ok(number @ 1..=10_000) => Ok(number),
        _ => Err(StorageError::Rejected(format!(
            "part number {part} is not between 1 and 10000"
        ))),
    }
}

/// The error of one S3 call as the port names it. S3 messages name the bucket and key, never a
/// credential, so they may be logged.
fn storage_error<E>(operation: &str, error: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = error.code().map(str::to_owned);
    let status = match &error {
        SdkError::ServiceError(_) => error.raw_response().map(|raw| raw.status().as_u16()),
        _ => None,
    };
    match (code.as_deref(), status) {
        (Some(code), _) if NOT_FOUND_CODES.contains(&code) => StorageError::NotFound,
        // A HEAD has no body, hence no code: its status says it all.
        (None, Some(404)) => StorageError::NotFound,
        (Some(code), _) if REJECTED_CODES.contains(&code) => StorageError::Rejected(format!(
            "S3 {operation}: {code}: {}",
            error.message().unwrap_or("")
        )),
        _ => StorageError::Unavailable(format!("S3 {operation}: {}", DisplayErrorContext(&error))),
    }
}

/// ETags as S3 answers them, in double quotes; compared without.
pub fn bare_etag(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

#[async_trait]
impl Storage for S3Storage {
    async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        let output = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/zip")
            .send()
            .await
            .map_err(|error| storage_error("CreateMultipartUpload", error))?;
        output
            .upload_id
            .ok_or_else(|| StorageError::Unavailable("S3 answered no upload id".to_owned()))
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        expires: Duration,
    ) -> Result<String, StorageError> {
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number(part)?)
            .presigned(presigning(expires)?)
            .await
            .map_err(|error| storage_error("presign UploadPart", error))?;
        Ok(request.uri().to_owned())
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>, StorageError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let output = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|error| storage_error("ListParts", error))?;
            for part in output.parts() {
                let (Some(number), Some(etag)) = (part.part_number, part.e_tag.as_deref()) else {
                    return Err(StorageError::Unavailable(
                        "S3 listed a part without number or ETag".to_owned(),
                    ));
                };
                parts.push(StoredPart {
                    part: u32::try_from(number).unwrap_or(0),
                    etag: etag.to_owned(),
                    size: u64::try_from(part.size.unwrap_or(0)).unwrap_or(0),
                });
            }
            match (output.is_truncated, output.next_part_number_marker) {
                (Some(true), Some(next)) if !next.is_empty() => marker = Some(next),
                _ => break,
            }
        }
        // Some S3-compatible servers list parts in no particular order.
        parts.sort_by_key(|part| part.part);
        parts.dedup_by_key(|part| part.part);
        Ok(parts)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StorageError> {
        let parts = parts
            .iter()
            .map(|(part, etag)| {
                Ok(CompletedPart::builder()
                    .part_number(part_number(*part)?)
                    .e_tag(etag)
                    .build())
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|error| storage_error("CompleteMultipartUpload", error))?;
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|error| storage_error("AbortMultipartUpload", error))?;
        Ok(())
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, StorageError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(expires)?)
            .await
            .map_err(|error| storage_error("presign GetObject", error))?;
        Ok(request.uri().to_owned())
    }

    async fn size(&self, key: &str) -> Result<u64, StorageError> {
        let output = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| storage_error("HeadObject", error))?;
        Ok(u64::try_from(output.content_length.unwrap_or(0)).unwrap_or(0))
    }

    async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let last = start.saturating_add(len - 1);
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-{last}"))
            .send()
            .await
            .map_err(|error| storage_error("GetObject", error))?;
        let bytes =
            output.body.collect().await.map_err(|error| {
                StorageError::Unavailable(format!("S3 GetObject body: {error}"))
            })?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| storage_error("DeleteObject", error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_without_quotes() {
        assert_eq!(bare_etag("\"abc\""), "abc");
        assert_eq!(bare_etag("abc"), "abc");
        assert_eq!(bare_etag("W/\"abc\""), "abc");
    }

    #[test]
    fn part_numbers_are_1_to_10000() {
        assert!(part_number(0).is_err());
        assert_eq!(part_number(1).ok(), Some(1));
        assert_eq!(part_number(10_000).ok(), Some(10_000));
        assert!(part_number(10_001).is_err());
    }
}
