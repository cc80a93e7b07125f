//! Distributed Arrow frames: where data comes from ([`storage`]), how text is cut
//! ([`split`]) and typed ([`setup`]), parsed in parallel, held under a memory budget, and
//! summarised.

mod error;
pub mod setup;
pub mod split;
pub mod storage;

pub use error::{FrameError, FrameResult};
