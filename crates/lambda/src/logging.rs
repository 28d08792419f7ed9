//! The function's logs: JSON lines (CloudWatch), each carrying the span it was written in — one
//! span per SQS message with its `message_id` — and, at the top level as in Lambda's own JSON
//! log lines, the invocation's `requestId` and `xrayTraceId`, at the level Lambda's logging
//! configuration sets. An operator finds every line of one invocation with
//! `filter requestId = "…"` in CloudWatch Logs Insights.

use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The span `lambda_runtime` opens around each invocation (its `TracingLayer`), with the fields
/// `requestId`, and `xrayTraceId` and `tenantId` when Lambda sends them.
pub const INVOCATION_SPAN: &str = "Lambda runtime invoke";

/// The invocation span's fields lifted to the top level of every line written inside it.
const INVOCATION_FIELDS: [&str; 3] = ["requestId", "xrayTraceId", "tenantId"];

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
/// written in (`"span": {"name": "message", "message_id": …}`) and the invocation's
/// `requestId` and `xrayTraceId` (see [`INVOCATION_SPAN`]), filtered by `filter`.
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
        .map_event_format(|json| WithInvocation { inner: json })
        .with_writer(writer)
        .finish()
}

/// A JSON line format (`inner`) with the invocation span's fields added at the top level.
struct WithInvocation<F> {
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for WithInvocation<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let invocation = invocation_fields(ctx);
        if invocation.is_empty() {
            return writer.write_str(&line);
        }
        match serde_json::from_str::<Map<String, Value>>(line.trim_end()) {
            Ok(mut object) => {
                object.extend(invocation);
                writeln!(writer, "{}", Value::Object(object))
            }
            // Not a JSON object (cannot happen with the JSON format): the line as it is.
            Err(_) => writer.write_str(&line),
        }
    }
}

/// The [`INVOCATION_FIELDS`] of the innermost [`INVOCATION_SPAN`] around the event, if any.
fn invocation_fields<S, N>(ctx: &FmtContext<'_, S, N>) -> Map<String, Value>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let Some(scope) = ctx.event_scope() else {
        return Map::new();
    };
    for span in scope {
        if span.name() != INVOCATION_SPAN {
            continue;
        }
        let extensions = span.extensions();
        let Some(fields) = extensions.get::<FormattedFields<N>>() else {
            return Map::new();
        };
        let Ok(fields) = serde_json::from_str::<Map<String, Value>>(&fields.fields) else {
            return Map::new();
        };
        return fields
            .into_iter()
            .filter(|(name, _)| INVOCATION_FIELDS.contains(&name.as_str()))
            .collect();
    }
    Map::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buffer) = self.0.lock() {
                buffer.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(lines: &Lines) -> Vec<Value> {
        let bytes = lines.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or(Value::Null))
            .collect()
    }

    #[test]
    fn every_line_of_an_invocation_carries_its_request_and_trace_ids() {
        let buffer = Lines::default();
        let writer = buffer.clone();
        let subscriber = subscriber(EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before any invocation");
            // As lambda_runtime's TracingLayer opens it (layers/trace.rs).
            let invocation = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "8f5d1f1e-req",
                xrayTraceId = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
            );
            let _invocation = invocation.enter();
            tracing::info!(key = "incoming/a.png", "in the invocation");
            let message = tracing::info_span!("message", message_id = "msg-1");
            let _message = message.enter();
            tracing::warn!(key = "incoming/a.png", "in a message");
        });
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].get("requestId").is_none(), "{}", lines[0]);
        for line in &lines[1..] {
            assert_eq!(line["requestId"], "8f5d1f1e-req", "{line}");
            assert_eq!(
                line["xrayTraceId"], "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
                "{line}"
            );
            assert_eq!(line["fields"]["key"], "incoming/a.png", "{line}");
        }
        assert_eq!(lines[2]["span"]["message_id"], "msg-1", "{}", lines[2]);
        assert_eq!(lines[2]["level"], "WARN", "{}", lines[2]);
    }

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
