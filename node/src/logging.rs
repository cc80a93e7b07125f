//! Process-wide logging: `tracing` to stderr, filtered by `EDDY_LOG` (or `RUST_LOG`), with
//! this node's address at the start of every line once it is known, so that the logs of
//! many workers gathered in one place (YARN, Spark) still say who wrote them.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

static NODE_LABEL: OnceLock<String> = OnceLock::new();

/// Sets the label shown at the start of every log line (first call wins).
pub fn set_node_label(label: impl Into<String>) {
    let _ = NODE_LABEL.set(label.into());
}

struct Labelled {
    inner: Format<Full>,
}

impl<S, N> FormatEvent<S, N> for Labelled
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        if let Some(label) = NODE_LABEL.get() {
            write!(writer, "[{label}] ")?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

/// Installs the subscriber; `default_filter` applies when neither `EDDY_LOG` nor `RUST_LOG` is set.
pub fn init(default_filter: &str) {
    // hdfs-native warns on every NameNode retry; the error that ends the retries says it all.
    let default_filter = format!("{default_filter},hdfs_native=error");
    let default_filter = default_filter.as_str();
    let filter = std::env::var("EDDY_LOG").ok().or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| default_filter.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .fmt_fields(DefaultFields::new())
        .event_format(Labelled { inner: Format::default().with_target(false) })
        .try_init();
}
