//! Structured logs in the two formats Prometheus offers: logfmt (default)
//! and JSON. Lines look like Prometheus 3's:
//! `time=2026-01-02T03:04:05.678Z level=INFO source=main.rs:12 msg="Server is ready" addr=0.0.0.0:9090`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is one of debug/info/warn/error.
/// ember's own crates (every target starts with `ember`) log at `level`;
/// dependencies only at warn, so `--log.level=debug` is not drowned in
/// HTTP-client chatter. `EMBER_LOG` overrides with an `EnvFilter` spec.
pub fn init(level: &str, format: &str) {
    let spec = format!("warn,ember={level}");
    let filter = EnvFilter::try_from_env("EMBER_LOG").unwrap_or_else(|_| EnvFilter::new(spec));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder.event_format(Logfmt).try_init()
    };
}

/// logfmt: `key=value` pairs, values quoted when they contain spaces,
/// quotes or `=`.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let now = ember_model::sample::now_millis();
        let mut line = String::with_capacity(160);
        let _ = write!(line, "time={} level={}", ember_model::time::format_rfc3339(now), meta.level());
        if let (Some(file), Some(l)) = (meta.file(), meta.line()) {
            let file = file.rsplit('/').next().unwrap_or(file);
            let _ = write!(line, " source={file}:{l}");
        }
        let mut fields = String::new();
        let mut v = LogfmtVisitor { out: &mut fields, msg: None };
        event.record(&mut v);
        let msg = v.msg.take().unwrap_or_default();
        // msg comes right after source, then the event's fields, as
        // Prometheus prints them.
        line.push_str(" msg=");
        push_value(&mut line, &msg);
        line.push_str(&fields);
        writeln!(w, "{line}")
    }
}

fn push_value(out: &mut String, v: &str) {
    if v.is_empty() || v.contains([' ', '"', '=', '\n', '\t']) {
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str(v);
    }
}

struct LogfmtVisitor<'a> {
    out: &'a mut String,
    msg: Option<String>,
}

impl Visit for LogfmtVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = Some(value.to_owned());
            return;
        }
        self.out.push(' ');
        self.out.push_str(field.name());
        self.out.push('=');
        push_value(self.out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let s = format!("{value:?}");
        self.record_str(field, &s);
    }
}
