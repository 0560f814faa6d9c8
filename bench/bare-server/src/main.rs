//! The yardstick for `bench/get-establishment.sh`: the same HTTP stack as `bcdi-hosting serve`
//! (axum on tokio), answering a constant 200 with a small JSON body and doing nothing else.

use axum::http::header;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8090);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("port free");
    let router = axum::Router::new().fallback(|| async {
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            "{\"status\":\"1\"}",
        )
    });
    axum::serve(listener, router).await.expect("serve");
}
