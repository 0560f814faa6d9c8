//! Logs: one JSON line per event in Lambda (CloudWatch reads it), plain text locally unless
//! `LOG_FORMAT=json`. Level from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else `info`.
//!
//! Secrets never reach a log: their types do not print, and handlers record only the RNE.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

impl Format {
    /// JSON unless `AWS_LAMBDA_LOG_FORMAT` (or `LOG_FORMAT`) says `Text`; `default` otherwise.
    pub fn from_env(default: Format) -> Format {
        let chosen =
            std::env::var("AWS_LAMBDA_LOG_FORMAT").or_else(|_| std::env::var("LOG_FORMAT"));
        match chosen.map(|value| value.to_ascii_lowercase()) {
            Ok(value) if value == "json" => Format::Json,
            Ok(value) if value == "text" => Format::Text,
            _ => default,
        }
    }
}

pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| {
            EnvFilter::try_new(
                std::env::var("AWS_LAMBDA_LOG_LEVEL")
                    .unwrap_or_default()
                    .to_lowercase(),
            )
        })
        .ok()
        .filter(|filter| filter.to_string() != "")
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = match format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        Format::Text => builder.compact().try_init(),
    };
    // A subscriber already set (by a test, for example) is fine.
    let _ = result;
}
