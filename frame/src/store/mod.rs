//! The chunk store of one worker: chunks by frame, with every byte counted against the
//! worker's memory budget. Space is reserved before parsing (from an estimate) and settled to
//! the real size afterwards, so an import that does not fit fails before the process grows.
//!
//! The room also holds what every node knows of a frame ([`meta`]), the narrow stored forms
//! of columns ([`narrow`]) and compaction of incoming batches to them ([`ingest`]).

pub mod ingest;
pub mod meta;
pub mod narrow;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;

use crate::{FrameError, FrameResult};

/// One chunk: the batches parsed from one split.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The batches.
    pub batches: Vec<RecordBatch>,
    /// Rows in all batches.
    pub rows: u64,
    /// Bytes the batches hold.
    pub bytes: u64,
}

impl Chunk {
    /// Builds a chunk and measures it.
    pub fn new(batches: Vec<RecordBatch>) -> Self {
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let bytes = batches.iter().map(|b| b.get_array_memory_size() as u64).sum();
        Self { batches, rows, bytes }
    }
}

#[derive(Debug, Default)]
struct Inner {
    used: u64,
    frames: HashMap<String, BTreeMap<u32, Arc<Chunk>>>,
}

/// The store key of the replicas of `frame`'s chunks held here: kept apart from the frame's
/// own chunks, so that work on the frame never counts a chunk twice.
pub fn replica_key(frame: &str) -> String {
    format!("{frame}\u{0}replicas")
}

/// Called with the bytes in use after every change.
pub type UsageObserver = Arc<dyn Fn(u64) + Send + Sync>;

/// Chunks held by this worker.
pub struct ChunkStore {
    node: String,
    budget: u64,
    inner: Mutex<Inner>,
    observer_opt: Option<UsageObserver>,
}

impl std::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStore").field("node", &self.node).field("budget", &self.budget).finish()
    }
}

/// Space reserved in the store; released on drop unless settled into a chunk.
#[derive(Debug)]
pub struct Reservation<'a> {
    store: &'a ChunkStore,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let used = {
            let mut inner = self.store.lock();
            inner.used = inner.used.saturating_sub(self.bytes);
            inner.used
        };
        self.store.notify(used);
    }
}

impl ChunkStore {
    /// A store for `node` with `budget` bytes.
    pub fn new(node: impl Into<String>, budget: u64) -> Self {
        Self { node: node.into(), budget, inner: Mutex::default(), observer_opt: None }
    }

    /// Reports usage changes to `observer` (the node's stats).
    pub fn with_observer(mut self, observer: UsageObserver) -> Self {
        self.observer_opt = Some(observer);
        self
    }

    fn notify(&self, used: u64) {
        if let Some(o) = &self.observer_opt {
            o(used);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The budget in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes in use or reserved.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    /// Reserves `bytes` for `what`, or fails with how much is needed and free.
    pub fn reserve(&self, bytes: u64, what: &str) -> FrameResult<Reservation<'_>> {
        let mut reservation = Reservation { store: self, bytes: 0 };
        self.resize(&mut reservation, bytes, what)?;
        Ok(reservation)
    }

    /// Grows or shrinks a reservation to `bytes`; growing fails like [`Self::reserve`].
    pub fn resize(&self, reservation: &mut Reservation<'_>, bytes: u64, what: &str) -> FrameResult<()> {
        let mut inner = self.lock();
        if bytes > reservation.bytes {
            let more = bytes - reservation.bytes;
            let available = self.budget.saturating_sub(inner.used);
            if more > available {
                return Err(FrameError::OutOfMemory {
                    node: self.node.clone(),
                    what: what.into(),
                    needed: more,
                    available,
                    budget: self.budget,
                });
            }
            inner.used += more;
        } else {
            inner.used = inner.used.saturating_sub(reservation.bytes - bytes);
        }
        reservation.bytes = bytes;
        let used = inner.used;
        drop(inner);
        self.notify(used);
        Ok(())
    }

    /// Keeps only the chunks of `frame` that `keep` accepts; returns the bytes freed.
    pub fn retain(&self, frame: &str, keep: impl Fn(u32) -> bool) -> u64 {
        let mut inner = self.lock();
        let mut freed = 0;
        if let Some(chunks) = inner.frames.get_mut(frame) {
            chunks.retain(|i, c| {
                let k = keep(*i);
                if !k {
                    freed += c.bytes;
                }
                k
            });
        }
        inner.used = inner.used.saturating_sub(freed);
        let used = inner.used;
        drop(inner);
        self.notify(used);
        freed
    }

    /// Stores a chunk in place of its reservation. The chunk is kept even if it came out
    /// larger than reserved (it is already in memory); the next reservation sees the truth.
    pub fn insert(&self, frame: &str, index: u32, chunk: Chunk, reservation: Reservation<'_>) {
        let mut inner = self.lock();
        inner.used = inner.used.saturating_sub(reservation.bytes) + chunk.bytes;
        std::mem::forget(reservation);
        if let Some(old) = inner.frames.entry(frame.to_string()).or_default().insert(index, Arc::new(chunk)) {
            inner.used = inner.used.saturating_sub(old.bytes);
        }
        let used = inner.used;
        drop(inner);
        self.notify(used);
    }

    /// The chunks of a frame held here, by index.
    pub fn chunks(&self, frame: &str) -> Vec<(u32, Arc<Chunk>)> {
        self.lock().frames.get(frame).map(|m| m.iter().map(|(i, c)| (*i, c.clone())).collect()).unwrap_or_default()
    }

    /// Makes the replicas `indices` of `frame` held here its chunks of record (their worker was
    /// lost). Nothing moves if one is missing: its index is the error.
    pub fn promote(&self, frame: &str, indices: &[u32]) -> Result<(), u32> {
        let mut inner = self.lock();
        let key = replica_key(frame);
        let held = inner.frames.get(&key);
        if let Some(missing) = indices.iter().find(|i| !held.is_some_and(|h| h.contains_key(i))) {
            return Err(*missing);
        }
        let mut moved = Vec::with_capacity(indices.len());
        if let Some(replicas) = inner.frames.get_mut(&key) {
            for i in indices {
                if let Some(c) = replicas.remove(i) {
                    moved.push((*i, c));
                }
            }
        }
        let own = inner.frames.entry(frame.to_string()).or_default();
        let mut replaced = 0;
        for (i, c) in moved {
            if let Some(old) = own.insert(i, c) {
                replaced += old.bytes;
            }
        }
        inner.used = inner.used.saturating_sub(replaced);
        Ok(())
    }

    /// Drops a frame's chunks and the replicas of its chunks held here; returns the bytes freed.
    pub fn delete(&self, frame: &str) -> u64 {
        let mut inner = self.lock();
        let freed: u64 = [frame.to_string(), replica_key(frame)]
            .iter()
            .filter_map(|k| inner.frames.remove(k))
            .map(|m| m.values().map(|c| c.bytes).sum::<u64>())
            .sum();
        inner.used = inner.used.saturating_sub(freed);
        let used = inner.used;
        drop(inner);
        self.notify(used);
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn batch(n: i64) -> RecordBatch {
        RecordBatch::try_from_iter([("a", Arc::new(Int64Array::from_iter_values(0..n)) as _)]).unwrap()
    }

    #[test]
    fn budget_is_enforced_and_freed() {
        let store = ChunkStore::new("n1", 10_000);
        let err = store.reserve(20_000, "chunk 0 of f").unwrap_err().to_string();
        assert!(err.contains("needs 20000 bytes, 10000 of 10000 bytes are free"), "{err}");
        let r = store.reserve(5_000, "chunk 0").unwrap();
        assert_eq!(store.used(), 5_000);
        drop(r);
        assert_eq!(store.used(), 0);
        let r = store.reserve(5_000, "chunk 0").unwrap();
        let chunk = Chunk::new(vec![batch(100)]);
        let bytes = chunk.bytes;
        store.insert("f", 0, chunk, r);
        assert_eq!(store.used(), bytes);
        assert_eq!(store.chunks("f").len(), 1);
        assert_eq!(store.delete("f"), bytes);
        assert_eq!(store.used(), 0);
        assert!(store.chunks("f").is_empty());
    }

    #[test]
    fn reservations_resize_within_the_budget_and_stale_chunks_are_dropped() {
        let store = ChunkStore::new("n1", 10_000);
        let mut r = store.reserve(1_000, "put").unwrap();
        store.resize(&mut r, 4_000, "put").unwrap();
        assert_eq!(store.used(), 4_000);
        let err = store.resize(&mut r, 20_000, "put").unwrap_err().to_string();
        assert!(err.contains("needs 16000 bytes, 6000 of 10000 bytes are free"), "{err}");
        store.resize(&mut r, 500, "put").unwrap();
        assert_eq!(store.used(), 500);
        drop(r);
        assert_eq!(store.used(), 0);
        for i in 0..3 {
            let r = store.reserve(10, "c").unwrap();
            store.insert("f", i, Chunk::new(vec![batch(10)]), r);
        }
        let one = store.chunks("f")[0].1.bytes;
        assert_eq!(store.retain("f", |i| i != 1), one);
        assert_eq!(store.chunks("f").iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(store.used(), 2 * one);
    }
}
