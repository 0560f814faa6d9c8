//! `Storage`: the shared suite on moto's S3 and on the local server's embedded storage, then
//! what only the embedded storage can show (moto checks no signature): refused signatures and
//! expired URLs, CORS for the upload page, and uploads that survive a restart.

use std::time::Duration;

use bcdi_hosting::storage::EmbeddedStorage;
use bcdi_shared::adapters::s3::S3Storage;
use bcdi_shared::ports::StorageError;
use bcdi_tests::app::fresh_dir;
use bcdi_tests::storage_suite::{bare, bytes, put, send_part, Shared};

mod moto {
    bcdi_tests::storage_suite!(bcdi_tests::storage_suite::moto_storage);
}

mod embedded {
    use bcdi_hosting::storage::EmbeddedStorage;
    use bcdi_tests::app::fresh_dir;
    use bcdi_tests::storage_suite::Shared;

    async fn storage() -> Shared {
        EmbeddedStorage::spawn(&fresh_dir("storage"))
            .expect("embedded storage")
            .storage()
    }

    bcdi_tests::storage_suite!(storage);
}

const KEY: &str = "bases/0750655E/signed.zip";

async fn embedded() -> Shared {
    EmbeddedStorage::spawn(&fresh_dir("storage"))
        .expect("embedded storage")
        .storage()
}

#[tokio::test]
async fn embedded_storage_refuses_a_tampered_signature() {
    // Given a presigned part URL whose signature is changed by one character
    let storage = embedded().await;
    let upload_id = storage.create_multipart(KEY).await.expect("an upload");
    let url = storage
        .presign_part(KEY, &upload_id, 1, Duration::from_secs(600))
        .await
        .expect("a part URL");
    let last = url.chars().last().expect("a non-empty URL");
    let tampered = format!(
        "{}{}",
        &url[..url.len() - 1],
        if last == '0' { '1' } else { '0' }
    );

    // Then storage refuses it, stores nothing, and still takes the genuine URL
    let (status, _) = put(&tampered, bytes(1, 1000)).await;
    assert_eq!(status, 403);
    assert!(storage
        .list_parts(KEY, &upload_id)
        .await
        .expect("the parts")
        .is_empty());
    let (status, _) = put(&url, bytes(1, 1000)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn embedded_storage_refuses_an_expired_url() {
    // Given a part URL valid for one second, used after it lapsed
    let storage = embedded().await;
    let upload_id = storage.create_multipart(KEY).await.expect("an upload");
    let url = storage
        .presign_part(KEY, &upload_id, 1, Duration::from_secs(1))
        .await
        .expect("a part URL");
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // Then storage refuses it and stores nothing
    let (status, _) = put(&url, bytes(2, 1000)).await;
    assert_eq!(status, 403);
    assert!(storage
        .list_parts(KEY, &upload_id)
        .await
        .expect("the parts")
        .is_empty());
}

#[tokio::test]
async fn embedded_storage_refuses_unsigned_requests() {
    // Given an upload, and a part URL stripped of its signature
    let storage = embedded().await;
    let upload_id = storage.create_multipart(KEY).await.expect("an upload");
    let url = storage
        .presign_part(KEY, &upload_id, 1, Duration::from_secs(600))
        .await
        .expect("a part URL");
    let unsigned = url.split('?').next().expect("a URL").to_owned()
        + &format!("?partNumber=1&uploadId={upload_id}");

    // Then storage refuses it
    let (status, _) = put(&unsigned, bytes(3, 1000)).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn embedded_storage_lets_the_page_read_etags_across_origins() {
    // Given a part URL, and a page on another origin
    let storage = embedded().await;
    let upload_id = storage.create_multipart(KEY).await.expect("an upload");
    let url = storage
        .presign_part(KEY, &upload_id, 1, Duration::from_secs(600))
        .await
        .expect("a part URL");
    let origin = "http://127.0.0.1:9";
    let http = reqwest::Client::new();

    // Then the preflight of its PUT is allowed
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("storage answers");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(header(&preflight, "access-control-allow-origin"), origin);
    assert!(header(&preflight, "access-control-allow-methods").contains("put"));

    // And the PUT's answer lets the page read its ETag
    let response = http
        .put(&url)
        .header("origin", origin)
        .body(bytes(4, 1000))
        .send()
        .await
        .expect("storage answers");
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), origin);
    assert!(header(&response, "access-control-expose-headers").contains("etag"));
    assert!(response.headers().contains_key("etag"));
}

#[tokio::test]
async fn embedded_uploads_and_their_urls_survive_a_restart() {
    // Given an upload with one part stored, and a URL for its second
    let dir = fresh_dir("storage");
    let before = EmbeddedStorage::spawn(&dir)
        .expect("embedded storage")
        .storage();
    let upload_id = before.create_multipart(KEY).await.expect("an upload");
    let first = send_part(&before, KEY, &upload_id, 1, bytes(5, 5 * 1024 * 1024)).await;

    // When the storage starts again on the same directory (here on another port)
    let after = EmbeddedStorage::spawn(&dir)
        .expect("embedded storage")
        .storage();

    // Then the part is still listed, and the upload can be finished
    let listed = after.list_parts(KEY, &upload_id).await.expect("the parts");
    assert_eq!(listed.len(), 1);
    assert_eq!(bare(&listed[0].etag), bare(&first));
    let second = send_part(&after, KEY, &upload_id, 2, bytes(6, 10)).await;
    after
        .complete_multipart(KEY, &upload_id, &[(1, first), (2, second)])
        .await
        .expect("completion");
    assert_eq!(
        after.size(KEY).await.expect("its size"),
        5 * 1024 * 1024 + 10
    );
}

#[tokio::test]
async fn unreachable_storage_is_unavailable() {
    // Port 9 (discard) on loopback: nothing listens there.
    let storage = S3Storage::for_endpoint(
        "http://127.0.0.1:9",
        "eu-west-3",
        "key",
        "secret",
        "bcdi-bases".to_owned(),
    );
    let error = storage_port(&storage).create_multipart(KEY).await;
    assert!(
        matches!(error, Err(StorageError::Unavailable(_))),
        "{error:?}"
    );
}

fn storage_port(storage: &S3Storage) -> &dyn bcdi_shared::ports::Storage {
    storage
}
