//! Work over frames held in the cloud: summaries and histograms ([`summary`]), group-by
//! ([`groupby`]), and the jobs that run them and exports across workers (`ops`).

pub mod groupby;
pub(crate) mod ops;
pub mod summary;
