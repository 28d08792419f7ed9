//! The function's logs: JSON lines (CloudWatch), each carrying the span it was written in — one
//! span per SQS message with its `message_id` — at the level Lambda's logging configuration sets.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The level filter: `AWS_LAMBDA_LOG_LEVEL` (set by the function's logging configuration:
/// `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or `FATAL`), else `RUST_LOG`, else `info`.
pub fn filter(lookup: impl Fn(&str) -> Option<String>) -> EnvFilter {
    let level = lookup("AWS_LAMBDA_LOG_LEVEL").map(|level| {
        match level.trim().to_ascii_uppercase().as_str() {
            "TRACE" => "trace",
            "DEBUG" => "debug",
            "WARN" => "warn",
            "ERROR" | "FATAL" => "error",
            _ => "info",
        }
    });
    match (level, lookup("RUST_LOG")) {
        (Some(level), _) => EnvFilter::new(level),
        (None, Some(directives)) => {
            EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"))
        }
        (None, None) => EnvFilter::new("info"),
    }
}

/// A subscriber writing JSON lines to `writer`, each with the fields of the span it was
/// written in (`"span": {"name": "message", "message_id": …}`), filtered by `filter`.
pub fn subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_log_level_wins() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            filter(env(&[
                ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
                ("RUST_LOG", "error")
            ]))
            .to_string(),
            "debug"
        );
        assert_eq!(
            filter(env(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")])).to_string(),
            "error"
        );
        assert_eq!(filter(env(&[("RUST_LOG", "warn")])).to_string(), "warn");
        assert_eq!(filter(env(&[])).to_string(), "info");
    }
}
