//! Distributed Arrow frames: where data comes from ([`storage`]), how text is cut
//! ([`split`]) and typed ([`setup`]), parsed in parallel, held under a memory budget, and
//! summarised.

mod error;
pub mod parse;
pub mod setup;
pub mod split;
pub mod storage;
pub mod store;
pub mod summary;

pub use error::{FrameError, FrameResult};
