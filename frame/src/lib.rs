//! Distributed Arrow frames: where data comes from ([`storage`]), how text is cut
//! ([`split`]) and typed ([`setup`]), parsed in parallel ([`parse`]), held under a memory
//! budget ([`store`]), summarised ([`summary`]), and coordinated across the cloud
//! ([`FrameCloud`], [`service`], [`rest`]).

mod cloud;
pub mod codec;
pub mod columnar;
pub mod compression;
mod direct;
mod error;
pub mod flight;
pub mod groupby;
mod hdfs;
pub mod ingest;
pub mod meta;
mod metrics;
pub mod narrow;
mod ops;
pub mod parse;
mod registry;
pub mod rest;
pub mod service;
pub mod setup;
mod sniff;
pub mod split;
pub mod storage;
pub mod store;
pub mod summary;
pub mod wire;

pub use cloud::{CommitRequest, FrameCloud, ImportRequest};
#[doc(hidden)]
pub use direct::compare_with_general as fuzz_compare_direct_with_general;
pub use error::{FrameError, FrameResult};
pub use ops::{ExportRequest, ExportResult};
