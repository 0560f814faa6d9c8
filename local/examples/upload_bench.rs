//! The upload page's work without a browser, for `bench/upload.sh`: uploads archives through the
//! upload API and the presigned part URLs of `bcdi-hosting serve`, several parts at a time as
//! the page does, and prints the bytes and seconds it took.
//!
//!     upload_bench <api base URL> <upload token> <parallel parts> <archive>...

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: upload_bench <api base URL> <upload token> <parallel parts> <archive>...";
    let base = args.next().ok_or(usage)?;
    let token = args.next().ok_or(usage)?;
    let parallel: usize = args.next().ok_or(usage)?.parse()?;
    let archives: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if archives.is_empty() {
        return Err(usage.into());
    }

    let http = reqwest::Client::new();
    let slots = Arc::new(Semaphore::new(parallel));
    let started = Instant::now();
    let mut bytes = 0;
    // Like the page: every archive's parts share one pool of parallel requests.
    let uploads = archives.into_iter().map(|path| {
        let (http, base, token, slots) = (http.clone(), base.clone(), token.clone(), slots.clone());
        tokio::spawn(async move { upload(&http, &base, &token, &slots, path).await })
    });
    for upload in uploads.collect::<Vec<_>>() {
        bytes += upload.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{bytes} {seconds:.3}");
    Ok(())
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    slots: &Arc<Semaphore>,
    path: PathBuf,
) -> Result<u64, Error> {
    let size = tokio::fs::metadata(&path).await?.len();
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or("an archive needs a UTF-8 file name")?
        .to_owned();
    let file = call(
        http.post(format!("{base}/v1/upload/files"))
            .bearer_auth(token)
            .json(&json!({"name": name, "size": size, "base": name.trim_end_matches(".zip")})),
    )
    .await?;
    let id = file["id"].as_str().ok_or("no file id")?.to_owned();
    let part_size = file["part_size"].as_u64().ok_or("no part size")?;
    let part_count = file["part_count"].as_u64().ok_or("no part count")?;

    let numbers: Vec<u64> = (1..=part_count).collect();
    let urls = call(
        http.post(format!("{base}/v1/upload/files/{id}/part-urls"))
            .bearer_auth(token)
            .json(&json!({ "parts": numbers })),
    )
    .await?;
    let mut sends = Vec::new();
    for entry in urls["urls"].as_array().ok_or("no URLs")? {
        let part = entry["part"].as_u64().ok_or("no part number")?;
        let url = entry["url"].as_str().ok_or("no URL")?.to_owned();
        let (http, slots, path) = (http.clone(), slots.clone(), path.clone());
        sends.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await?;
            // Read when sent, as the page slices the file it was given.
            let start = (part - 1) * part_size;
            let len = part_size.min(size - start);
            let mut file = tokio::fs::File::open(&path).await?;
            file.seek(std::io::SeekFrom::Start(start)).await?;
            let mut body = vec![0; usize::try_from(len)?];
            file.read_exact(&mut body).await?;
            let response = http.put(&url).body(body).send().await?;
            if !response.status().is_success() {
                return Err(format!("PUT of part {part}: {}", response.status()).into());
            }
            let etag = response
                .headers()
                .get("etag")
                .and_then(|value| value.to_str().ok())
                .ok_or("no ETag")?
                .to_owned();
            Ok::<_, Error>(json!({"part": part, "etag": etag}))
        }));
    }
    let mut parts = Vec::new();
    for send in sends {
        parts.push(send.await??);
    }
    call(
        http.post(format!("{base}/v1/upload/files/{id}/complete"))
            .bearer_auth(token)
            .json(&json!({ "parts": parts })),
    )
    .await?;
    Ok(size)
}

async fn call(request: reqwest::RequestBuilder) -> Result<Value, Error> {
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        return Err(format!("{status}: {body}").into());
    }
    Ok(body)
}
