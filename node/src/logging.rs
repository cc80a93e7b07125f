//! Process-wide logging: `tracing` to stderr, filtered by `EDDY_LOG` (or `RUST_LOG`), with
//! this node's address at the start of every line once it is known, so that the logs of
//! many workers gathered in one place (YARN, Spark) still say who wrote them. The last
//! lines are also kept in memory ([`recent_lines`]) so the web UI can show every node's log
//! without reaching into YARN's or Kubernetes' log stores.

use std::collections::VecDeque;
use std::fmt;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

static NODE_LABEL: OnceLock<String> = OnceLock::new();

/// How many of the last log lines a process keeps for [`recent_lines`].
pub const KEPT_LINES: usize = 1000;

static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// The last `n` log lines of this process (at most [`KEPT_LINES`]), oldest first.
pub fn recent_lines(n: usize) -> Vec<String> {
    let recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
    recent.iter().skip(recent.len().saturating_sub(n)).cloned().collect()
}

/// A writer into the in-memory ring: each formatted event arrives as one write.
struct RingWriter;

impl std::io::Write for RingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
        for line in text.lines().filter(|l| !l.is_empty()) {
            if recent.len() == KEPT_LINES {
                recent.pop_front();
            }
            recent.push_back(line.to_string());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RingWriter {
    type Writer = RingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RingWriter
    }
}

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

/// One formatting layer: every line labelled with the node, written to `writer`.
fn labelled_layer<S, W>(writer: W, ansi: bool) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .fmt_fields(DefaultFields::new())
        .event_format(Labelled { inner: Format::default().with_target(false) })
}

/// Installs the subscriber with the filter a user asked for (`EDDY_LOG` or `RUST_LOG`, see
/// [`eddy_common::env::Environment::log_filter`]), else `default_filter`.
pub fn init(asked_opt: Option<String>, default_filter: &str) {
    // hdfs-native warns on every NameNode retry; the error that ends the retries says it all.
    let default_filter = format!("{default_filter},hdfs_native=error");
    let default_filter = default_filter.as_str();
    let filter = asked_opt.unwrap_or_else(|| default_filter.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default_filter));
    // The ring gets the same lines without colours, for the web UI.
    let to_stderr = labelled_layer(std::io::stderr, std::io::stderr().is_terminal());
    let to_ring = labelled_layer(RingWriter, false);
    let _ = tracing_subscriber::registry().with(filter).with(to_stderr).with(to_ring).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_lines_in_order() {
        let mut w = RingWriter;
        for i in 0..KEPT_LINES + 5 {
            std::io::Write::write_all(&mut w, format!("line {i}\n").as_bytes()).unwrap();
        }
        let last = recent_lines(3);
        assert_eq!(last, vec![format!("line {}", KEPT_LINES + 2), format!("line {}", KEPT_LINES + 3), format!("line {}", KEPT_LINES + 4)]);
        assert_eq!(recent_lines(usize::MAX).len(), KEPT_LINES);
    }
}
