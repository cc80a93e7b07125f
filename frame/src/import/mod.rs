//! The import pipeline, per format: what a file holds ([`sniff`]), how text is typed
//! ([`setup`]) and cut into splits ([`split`], [`compression`]), CSV parsed in parallel
//! ([`parse`], with the direct path for plain numeric text in `direct`), and Parquet and
//! Arrow IPC files read by row group or whole ([`columnar`]). Each format is one
//! implementation of the seam in `format` (the coordinator's plan, a worker's read of a
//! split); `coordinator` runs an import on whichever node received it, and each worker's
//! side of the protocol is in [`crate::service`].

pub mod columnar;
pub mod compression;
pub(crate) mod coordinator;
pub(crate) mod csv;
pub(crate) mod direct;
pub(crate) mod format;
pub mod parse;
pub mod setup;
pub(crate) mod sniff;
pub mod split;
