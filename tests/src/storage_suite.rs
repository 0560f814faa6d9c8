//! The promises of `Storage`, written once and run against every S3 it must work with (moto,
//! the local server's embedded storage): `storage_suite!` turns each function below into one
//! `#[tokio::test]` for a given storage. The parts are sent as the upload page sends them: one
//! plain `PUT` of the bytes to each presigned URL.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpRequest;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, HttpClient, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, SharedHttpClient,
};
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::result::ConnectorError;
use bcdi_shared::adapters::s3::S3Storage;
use bcdi_shared::ports::{Storage, StorageError};

pub type Shared = Arc<dyn Storage>;

const MIB: usize = 1024 * 1024;

/// A storage on moto's S3, on a new bucket of its own so that tests can run in parallel.
pub async fn moto_storage() -> Shared {
    let bucket = crate::moto::unique_table_name("bcdi").to_lowercase();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "eu-west-3".to_owned());
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(list_parts_fixed())
        .region(Region::new(region))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .endpoint_url(crate::moto::endpoint())
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    let storage = S3Storage::new(aws_sdk_s3::Client::from_conf(config), bucket.clone());
    storage
        .create_bucket()
        .await
        .unwrap_or_else(|error| panic!("creating bucket {bucket} on moto: {error}"));
    Arc::new(storage)
}

/// moto 5.2.5 answers `ListParts` with the root element `ListPartsResponse` where S3 (and the
/// SDK) have `ListPartsResult`: this client renames it in moto's answers, and changes nothing
/// else.
fn list_parts_fixed() -> SharedHttpClient {
    #[derive(Debug)]
    struct Renaming(SharedHttpConnector);

    impl HttpConnector for Renaming {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let inner = self.0.clone();
            HttpConnectorFuture::new(async move {
                let mut response = inner.call(request).await?;
                let body = std::mem::replace(response.body_mut(), SdkBody::taken());
                let bytes = ByteStream::new(body)
                    .collect()
                    .await
                    .map_err(|error| ConnectorError::io(error.into()))?
                    .into_bytes();
                let text = String::from_utf8_lossy(&bytes);
                let bytes = if text.contains("<ListPartsResponse") {
                    let fixed = text.replace("ListPartsResponse", "ListPartsResult");
                    response
                        .headers_mut()
                        .insert("content-length", fixed.len().to_string());
                    bytes::Bytes::from(fixed)
                } else {
                    bytes
                };
                *response.body_mut() = SdkBody::from(bytes);
                Ok(response)
            })
        }
    }

    let inner = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https();
    http_client_fn(move |settings, components| {
        SharedHttpConnector::new(Renaming(inner.http_connector(settings, components)))
    })
}

/// How long the URLs of these tests work: long enough for any machine.
const URL_LIFETIME: Duration = Duration::from_secs(600);

/// One `#[tokio::test]` per function of this module, each on a new storage from `$storage` (an
/// async fn returning a `Shared`). A function added to the module must be listed here too.
#[macro_export]
macro_rules! storage_suite {
    ($storage:path) => {
        $crate::storage_suite!(@each $storage;
            parts_sent_to_presigned_urls_are_listed_in_order_and_assembled,
            a_wrong_etag_is_refused_at_completion_and_loses_no_part,
            an_aborted_upload_lists_nothing_and_takes_no_more_parts,
            parts_of_an_unknown_upload_are_not_found,
            a_deleted_archive_is_gone,
            missing_archives_are_not_found_and_deleting_them_succeeds,
        );
    };
    (@each $storage:path; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::storage_suite::$name($storage().await).await;
            }
        )*
    };
}

/// `len` bytes that differ from part to part and from offset to offset.
pub fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

/// `PUT`s `body` to `url` as a browser would; the answer's status and `ETag`.
pub async fn put(url: &str, body: Vec<u8>) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .expect("storage answers");
    let etag = response
        .headers()
        .get("etag")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), etag)
}

/// Sends part `part` of upload `upload_id` through a presigned URL; its ETag.
pub async fn send_part(
    storage: &Shared,
    key: &str,
    upload_id: &str,
    part: u32,
    body: Vec<u8>,
) -> String {
    let url = storage
        .presign_part(key, upload_id, part, URL_LIFETIME)
        .await
        .expect("a part URL");
    let (status, etag) = put(&url, body).await;
    assert_eq!(status, 200, "PUT of part {part}");
    etag.expect("the part's ETag")
}

pub fn bare(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// A key no other test uses.
fn key(name: &str) -> String {
    format!(
        "bases/0750655E/{name}-{}.zip",
        crate::moto::unique_table_name("k")
    )
}

pub async fn parts_sent_to_presigned_urls_are_listed_in_order_and_assembled(storage: Shared) {
    // Given a multipart upload whose three parts are sent out of order
    let key = key("three-parts");
    let upload_id = storage.create_multipart(&key).await.expect("an upload");
    let contents = [bytes(1, 5 * MIB), bytes(2, 5 * MIB), bytes(3, 100 * 1024)];
    let mut etags = vec![String::new(); 3];
    for index in [2, 0, 1] {
        etags[index] = send_part(
            &storage,
            &key,
            &upload_id,
            index as u32 + 1,
            contents[index].clone(),
        )
        .await;
    }

    // Then storage lists them by number, with the ETags and sizes it answered
    let listed = storage
        .list_parts(&key, &upload_id)
        .await
        .expect("the parts");
    let summary: Vec<(u32, &str, u64)> = listed
        .iter()
        .map(|part| (part.part, bare(&part.etag), part.size))
        .collect();
    let expected: Vec<(u32, &str, u64)> = (0..3)
        .map(|i| (i as u32 + 1, bare(&etags[i]), contents[i].len() as u64))
        .collect();
    assert_eq!(summary, expected);

    // When the upload is completed with them
    let parts: Vec<(u32, String)> = listed
        .iter()
        .map(|part| (part.part, part.etag.clone()))
        .collect();
    storage
        .complete_multipart(&key, &upload_id, &parts)
        .await
        .expect("completion");

    // Then the archive is the parts end to end, whole and by ranges
    let whole: Vec<u8> = contents.concat();
    assert_eq!(
        storage.size(&key).await.expect("its size"),
        whole.len() as u64
    );
    assert_eq!(
        storage.read_range(&key, 0, 4).await.expect("its start"),
        whole[..4]
    );
    let near_end = whole.len() as u64 - 10;
    assert_eq!(
        storage
            .read_range(&key, near_end, 100)
            .await
            .expect("its end"),
        whole[whole.len() - 10..],
        "a range past the end gives the bytes there are"
    );
    let url = storage
        .presign_get(&key, URL_LIFETIME)
        .await
        .expect("a download URL");
    let downloaded = reqwest::get(&url)
        .await
        .expect("storage answers")
        .bytes()
        .await
        .expect("the body");
    assert!(
        downloaded.as_ref() == whole.as_slice(),
        "the download is the archive"
    );
}

pub async fn a_wrong_etag_is_refused_at_completion_and_loses_no_part(storage: Shared) {
    // Given an upload with two parts stored
    let key = key("wrong-etag");
    let upload_id = storage.create_multipart(&key).await.expect("an upload");
    let first = send_part(&storage, &key, &upload_id, 1, bytes(4, 5 * MIB)).await;
    let second = send_part(&storage, &key, &upload_id, 2, bytes(5, 1000)).await;

    // When completion names a wrong ETag for the second part
    let wrong = format!("\"{}\"", "0".repeat(32));
    let refused = storage
        .complete_multipart(&key, &upload_id, &[(1, first.clone()), (2, wrong)])
        .await;

    // Then it is refused, and both parts are still there to complete with
    assert!(
        matches!(refused, Err(StorageError::Rejected(_))),
        "{refused:?}"
    );
    let listed = storage
        .list_parts(&key, &upload_id)
        .await
        .expect("the parts");
    assert_eq!(listed.len(), 2);
    storage
        .complete_multipart(&key, &upload_id, &[(1, first), (2, second)])
        .await
        .expect("completion with the right ETags");
    assert_eq!(
        storage.size(&key).await.expect("its size"),
        (5 * MIB + 1000) as u64
    );
}

pub async fn an_aborted_upload_lists_nothing_and_takes_no_more_parts(storage: Shared) {
    // Given an upload with one part, and a URL for its second
    let key = key("aborted");
    let upload_id = storage.create_multipart(&key).await.expect("an upload");
    send_part(&storage, &key, &upload_id, 1, bytes(6, 1000)).await;
    let url = storage
        .presign_part(&key, &upload_id, 2, URL_LIFETIME)
        .await
        .expect("a part URL");

    // When it is aborted
    storage
        .abort_multipart(&key, &upload_id)
        .await
        .expect("abort");

    // Then it is gone: no parts to list, and the URL takes nothing
    let listed = storage.list_parts(&key, &upload_id).await;
    assert!(matches!(listed, Err(StorageError::NotFound)), "{listed:?}");
    // (moto answers 500 where S3 answers 404: what matters is that nothing is taken.)
    let (status, _) = put(&url, bytes(7, 1000)).await;
    assert_ne!(status, 200, "PUT after abort");
    let listed = storage.list_parts(&key, &upload_id).await;
    assert!(matches!(listed, Err(StorageError::NotFound)), "{listed:?}");
    assert!(matches!(
        storage.size(&key).await,
        Err(StorageError::NotFound)
    ));
}

pub async fn parts_of_an_unknown_upload_are_not_found(storage: Shared) {
    let key = key("unknown");
    let listed = storage
        .list_parts(&key, "7d3c1b6e-0d7e-4a53-9a55-0e9f4a7d1c21")
        .await;
    assert!(matches!(listed, Err(StorageError::NotFound)), "{listed:?}");
}

pub async fn a_deleted_archive_is_gone(storage: Shared) {
    // Given a complete one-part archive
    let key = key("deleted");
    let upload_id = storage.create_multipart(&key).await.expect("an upload");
    let etag = send_part(&storage, &key, &upload_id, 1, bytes(8, 2000)).await;
    storage
        .complete_multipart(&key, &upload_id, &[(1, etag)])
        .await
        .expect("completion");
    assert_eq!(storage.size(&key).await.expect("its size"), 2000);

    // When it is deleted, then it is not found
    storage.delete(&key).await.expect("deletion");
    assert!(matches!(
        storage.size(&key).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        storage.read_range(&key, 0, 10).await,
        Err(StorageError::NotFound)
    ));
}

pub async fn missing_archives_are_not_found_and_deleting_them_succeeds(storage: Shared) {
    let key = key("missing");
    assert!(matches!(
        storage.size(&key).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        storage.read_range(&key, 0, 10).await,
        Err(StorageError::NotFound)
    ));
    storage.delete(&key).await.expect("deleting nothing");
}
