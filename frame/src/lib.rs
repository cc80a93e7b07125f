//! Distributed Arrow frames, in rooms:
//!
//! - [`import`]: the import pipeline per format (sniffing, setup, splits, CSV parsing,
//!   Parquet and Arrow IPC);
//! - [`storage`]: where bytes come from and go (object_store for every scheme, HDFS, the
//!   node's store registry);
//! - [`store`]: what a worker holds (the chunk store under a memory budget, frame metadata,
//!   narrow stored forms);
//! - [`compute`]: summaries, histograms, group-by and the jobs that run them;
//! - [`service`]: the ways in (the worker side of the frame protocol over gRPC, Arrow Flight,
//!   the REST routes);
//! - [`FrameCloud`] (`cloud.rs`): one node's handle on all of it, and the coordinator of
//!   imports, exports and jobs;
//! - `recovery`: frames after the loss of a worker (lost chunks read again from the source,
//!   or the frame reported lost).
//!
//! Other crates use the modules re-exported here by their short names.

mod cloud;
pub mod compute;
mod error;
pub mod import;
mod recovery;
pub mod service;
pub mod storage;
pub mod store;

pub use cloud::{CommitRequest, FrameCloud, ImportRequest};
pub use compute::ops::{ExportRequest, ExportResult};
pub use compute::{groupby, summary};
pub use error::{FrameError, FrameResult};
#[doc(hidden)]
pub use import::direct::compare_with_general as fuzz_compare_direct_with_general;
pub use import::{compression, parse, setup, split};
pub use service::{codec, flight};
pub use store::{meta, narrow};
