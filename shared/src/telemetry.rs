//! Logs: one JSON line per event in Lambda (CloudWatch reads it), plain text locally unless
//! `LOG_FORMAT=json`. Level from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else `info`.
//!
//! Secrets never reach a log: their types do not print, and handlers record only the RNE.
//! Crates that write request URIs or headers below INFO (the embedded S3 server's presigned
//! signatures, bearer tokens) are held at INFO whatever the level asked: see `CAPPED`.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Targets (prefixes, as `RUST_LOG` matches them) whose DEBUG and TRACE events or spans carry
/// a request's URI, headers or signing material: `s3s` logs each request whole (presigned
/// `X-Amz-Signature` included), hyper, h2, tower-http, reqwest and the AWS SDK's HTTP and
/// signing layers log URIs, headers and canonical requests. Never below INFO: an operator's
/// `RUST_LOG=debug` (or `s3s=trace`) must not put a signature or token in a log.
pub const CAPPED: &[&str] = &[
    "s3s",
    "hyper",
    "h2",
    "tower_http",
    "reqwest",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_http_client",
];

/// The ceiling `init` puts over any filter: INFO for `CAPPED`, everything else as asked. A
/// layer of its own rather than directives added to `RUST_LOG`'s, since a more specific
/// directive there (`s3s::service=debug`) would win over ours.
pub fn ceiling() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED.iter().map(|target| (*target, LevelFilter::INFO)))
}

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

/// The subscriber `init` installs, with `filter` under the `ceiling`, writing to `writer`
/// without colours; the secrets test installs this very one with its own writer.
pub fn subscriber<W>(
    format: Format,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    build(format, filter, writer, false)
}

/// `colours`: ANSI escapes in the text format, for a terminal only (a file, CloudWatch or a
/// pipe would keep them as noise).
fn build<W>(
    format: Format,
    filter: EnvFilter,
    writer: W,
    colours: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colours);
    match format {
        Format::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish()
                .with(ceiling()),
        ),
        Format::Text => Box::new(builder.compact().finish().with(ceiling())),
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
    let colours = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // A subscriber already set (by a test, for example) is fine.
    let _ = build(format, filter, std::io::stdout, colours).try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    #[test]
    fn capped_crates_log_nothing_below_info_even_when_named_in_the_filter() {
        let lines = Lines::default();
        let filter = EnvFilter::new("trace,s3s=trace,s3s::service=trace,hyper=trace");
        let subscriber = subscriber(Format::Json, filter, lines.clone());

        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "s3s::service", "s3s debug X-Amz-Signature=");
            tracing::trace!(target: "hyper::proto", "hyper trace authorization");
            tracing::info!(target: "s3s::service", "s3s info");
            tracing::debug!(target: "bcdi_shared::api", "ours debug");
        });

        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("s3s debug"), "{text}");
        assert!(!text.contains("hyper trace"), "{text}");
        assert!(text.contains("s3s info"), "{text}");
        assert!(text.contains("ours debug"), "{text}");
    }

    #[test]
    fn text_written_anywhere_but_a_terminal_has_no_colour_escapes() {
        let lines = Lines::default();
        let subscriber = subscriber(Format::Text, EnvFilter::new("info"), lines.clone());

        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(status = 503, "store unavailable");
        });

        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("store unavailable"), "{text}");
        assert!(!text.contains('\x1b'), "{text:?}");
    }
}
