//! The frame layer's part of `GET /metrics`: frames and the jobs started on this node, read
//! from their registries at every scrape (jobs are kept, so sums over them only grow).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::cloud::FrameCloud;
use crate::store::meta::JobStatus;

/// Frames and jobs for the node's metrics.
pub(crate) struct FrameMetrics(pub(crate) FrameCloud);

fn gauge(value: u64) -> Gauge {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    g
}

fn counter(value: u64) -> Counter {
    let c: Counter = Counter::default();
    c.inc_by(value);
    c
}

impl eddy_node::metrics::MetricsSource for FrameMetrics {
    fn register(&self, registry: &mut Registry) {
        let frames = self.0.frames();
        registry.register("frames", "Frames in the cloud", gauge(frames.len() as u64));
        registry.register("frame_rows", "Rows of every frame in the cloud", gauge(frames.iter().map(|f| f.rows).sum()));
        registry.register_with_unit(
            "frame_memory",
            "Bytes every frame of the cloud takes in memory",
            Unit::Bytes,
            gauge(frames.iter().map(|f| f.bytes_in_memory).sum()),
        );
        let jobs = self.0.jobs();
        let by_status: Family<Vec<(String, String)>, Gauge> = Family::default();
        for status in ["running", "done", "failed"] {
            // Every status shows, at 0 when no job has it.
            let _ = by_status.get_or_create(&vec![("status".to_string(), status.to_string())]);
        }
        let duration = Histogram::new(exponential_buckets(0.01, 4.0, 10));
        for job in &jobs {
            let status = match job.status {
                JobStatus::Running => "running",
                JobStatus::Done => "done",
                JobStatus::Failed => "failed",
            };
            by_status.get_or_create(&vec![("status".to_string(), status.to_string())]).inc();
            if job.status != JobStatus::Running {
                duration.observe(job.msec as f64 / 1000.0);
            }
        }
        registry.register("jobs", "Jobs started on this node, by status", by_status);
        registry.register_with_unit("job_duration", "How long finished jobs of this node took", Unit::Seconds, duration);
        registry.register_with_unit(
            "import_read",
            "Bytes read by imports started on this node",
            Unit::Bytes,
            counter(jobs.iter().map(|j| j.bytes_read).sum()),
        );
        registry.register("import_rows", "Rows parsed by imports started on this node", counter(jobs.iter().map(|j| j.rows).sum()));
    }
}
