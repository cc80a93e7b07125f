//! A cloud that survives the loss of a worker: when membership removes a member, the lowest
//! surviving address goes through every frame with chunks on it. A frame an import
//! made is read again from its source, each lost chunk from the split that made it, on the
//! surviving workers that hold the least of it, as a job `GET /3/Jobs` shows. A frame without
//! a source (group-by results, Flight uploads) survives through copies of its chunks on other
//! workers (`--replicas`, made when it is registered): a surviving copy becomes the chunk of
//! record, and lost copies are made again. Frames that can do neither are marked lost with the
//! reason, and refuse work until deleted. The rest of the cloud keeps working throughout.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use eddy_common::NodeAddr;
use eddy_node::membership::Event;
use eddy_node::Role;
use eddy_proto::v1::{ChunkData, ChunkList, ChunkRef, ParseSplitsRequest};
use futures::{StreamExt, TryStreamExt};
use std::sync::atomic::Ordering;
use tokio::sync::broadcast::error::RecvError;

use crate::import::coordinator::Progress;
use crate::store::meta::{ChunkInfo, FrameInfo, Holdings, JobStatus};
use crate::{FrameCloud, FrameError, FrameResult};

/// What the membership reported since the last look.
#[derive(Default)]
struct Changes {
    /// Who recovers after a removal: the lowest survivor at the time (a worker that joins in
    /// place of a lost one afterwards may have a lower address, and knows no frame).
    recoverer: Option<NodeAddr>,
    /// Workers that joined the locked cloud (in place of lost ones).
    joined: Vec<NodeAddr>,
}

impl Changes {
    fn note(&mut self, cloud: &FrameCloud, event: Event) {
        match event {
            Event::Lost { node, .. } => {
                // Noted at once: a new process may soon answer at the same address.
                cloud.inner.state.lost.node_removed(node, &cloud.frames());
                // The lowest survivor (the view's leader: its lowest member, agreed or not).
                self.recoverer = self.recoverer.or(cloud.inner.node.view().leader);
            }
            Event::Joined { node } if cloud.inner.node.view().locked.is_some() => self.joined.push(node),
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.recoverer.is_none() && self.joined.is_empty()
    }
}

/// How long the acting node waits for the members to agree before it recovers or shares.
const AGREEMENT_WAIT: Duration = Duration::from_secs(30);

impl FrameCloud {
    /// On workers: recovers frames after every loss the membership reports.
    pub(crate) fn watch_losses(&self) {
        let recovers = self.inner.node.options().role != Role::Client;
        let mut events = self.inner.node.subscribe_events();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let mut changes = Changes::default();
                match events.recv().await {
                    Ok(event) => changes.note(&this, event),
                    // Missed events: the lowest member looks at every frame.
                    Err(RecvError::Lagged(_)) => changes.recoverer = this.inner.node.view().leader,
                    Err(RecvError::Closed) => return,
                }
                if !recovers {
                    // An observer serves no calls, so no recovery is pushed to it: it asks.
                    if changes.recoverer.is_some() {
                        tokio::spawn(this.clone().follow_recovery());
                    }
                    continue;
                }
                if changes.is_empty() {
                    continue;
                }
                // Changes found together (a partition, a loss and its replacement) are handled
                // together; the work below reads the state as it is then.
                tokio::time::sleep(Duration::from_millis(300)).await;
                while let Ok(event) = events.try_recv() {
                    changes.note(&this, event);
                }
                if let Some(recoverer) = changes.recoverer {
                    this.recover_lost_chunks(recoverer).await;
                    // The recoverer's metadata may never arrive here (a call that failed): ask.
                    tokio::spawn(this.clone().follow_recovery());
                }
                for node in changes.joined {
                    this.share_frames_with(node).await;
                }
            }
        });
    }

    /// Asks the members for every frame whose holdings were lost here until the frame's
    /// recovery has settled on one of them, and takes its metadata from there: on an observer,
    /// which serves no calls, the only way it learns; on a worker, in case the recoverer's
    /// push did not arrive.
    async fn follow_recovery(self) {
        let deadline = tokio::time::Instant::now() + AGREEMENT_WAIT * 2;
        let mut mismatched = BTreeSet::new();
        loop {
            let pending: Vec<String> = self
                .frames()
                .into_iter()
                .map(|f| f.frame_id)
                .filter(|id| self.inner.state.lost.of(id).is_some() && !mismatched.contains(id))
                .collect();
            if pending.is_empty() {
                return;
            }
            for id in &pending {
                if let Some(info) = self.settled_on_a_member(id).await {
                    if let Err(e) = self.inner.state.adopt(info) {
                        tracing::warn!(frame = %id, error = %e, "the recovered frame's metadata does not match what this node holds");
                        mismatched.insert(id.clone());
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(frames = %pending.join(", "), "no member reported these frames recovered; they stay unavailable here until the next change");
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The frame's metadata from the first healthy member where its recovery has settled: every
    /// chunk on a member, or the frame marked lost.
    async fn settled_on_a_member(&self, id: &str) -> Option<FrameInfo> {
        let view = self.inner.node.view();
        let is_member = |node: &NodeAddr| view.members.iter().any(|m| m.addr == *node);
        for member in view.members.iter().filter(|m| m.healthy && m.addr != view.me) {
            let Ok(mut client) = self.client(member.addr) else { continue };
            let call = client.get_frame(eddy_proto::v1::FrameRef { frame_id: id.to_string() });
            let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(5), call).await else { continue };
            let Some(Ok(info)) = reply.into_inner().info.map(crate::service::wire::frame_info_from) else { continue };
            if info.lost.is_some() || info.chunks.iter().all(|c| is_member(&c.node)) {
                return Some(info);
            }
        }
        None
    }

    /// A worker that joined the locked cloud in place of a lost one learns every frame from
    /// the lowest other member (the newcomer may have the lowest address, and knows nothing).
    async fn share_frames_with(&self, node: NodeAddr) {
        let view = self.inner.node.view();
        let Some(sharer) = view.members.iter().map(|m| m.addr).filter(|a| *a != node).min() else { return };
        let Some(_) = self.agreed_if(sharer).await else { return };
        for info in self.frames() {
            if let Err(e) = self.put_meta(node, &info).await {
                tracing::warn!(frame = %info.frame_id, %node, error = %e, "could not tell a new worker of a frame");
            }
        }
    }

    /// If this node is `recoverer` (the lowest survivor): re-reads, promotes or reports every
    /// frame's chunks on members that are gone, and copies again what lost a copy. Safe to run again; it looks
    /// only at what the frames list now.
    async fn recover_lost_chunks(&self, recoverer: NodeAddr) {
        let Some(members) = self.agreed_if(recoverer).await else { return };
        for info in self.frames() {
            let held = self.inner.state.lost.of(&info.frame_id).unwrap_or_default();
            let chunk_gone = |c: &ChunkInfo| !members.contains(&c.node) || held.chunks.contains(&c.index);
            let copy_gone = |c: &ChunkInfo, r: &NodeAddr| !members.contains(r) || held.copies.contains(&(c.index, *r));
            let lost: Vec<&ChunkInfo> = info.chunks.iter().filter(|c| chunk_gone(c)).collect();
            let stale_copies = info.chunks.iter().any(|c| c.replicas.iter().any(|r| copy_gone(c, r)));
            if (lost.is_empty() && !stale_copies) || info.lost.is_some() {
                self.inner.state.lost.settled(&info.frame_id);
                continue;
            }
            let mut gone: BTreeSet<String> = lost.iter().map(|c| c.node.to_string()).collect();
            gone.extend(info.chunks.iter().flat_map(|c| c.replicas.iter().filter(|r| copy_gone(c, r)).map(|r| r.to_string())));
            let gone = gone.into_iter().collect::<Vec<_>>().join(", ");
            let lost_indices: Vec<u32> = lost.iter().map(|c| c.index).collect();
            let recovered = if lost.is_empty() {
                Ok(info.clone())
            } else if info.recipe.is_some() {
                self.read_again(&info, &lost_indices, &members, &gone).await
            } else {
                self.promote_copies(&info, &lost_indices, &members, &held).await
            };
            let updated = match recovered {
                Ok(recovered) => {
                    tracing::info!(frame = %info.frame_id, chunks = lost_indices.len(), lost_with = %gone, "frame recovered");
                    self.copy_again(recovered, &info, &members, &held).await
                }
                Err(reason) => {
                    let rows: u64 = lost.iter().map(|c| c.rows).sum();
                    let why = format!(
                        "{} of its {} chunks ({rows} of {} rows) were lost with worker {gone}: {reason}",
                        lost.len(),
                        info.chunks.len(),
                        info.rows
                    );
                    tracing::error!(frame = %info.frame_id, "frame lost data: {why}");
                    FrameInfo { lost: Some(why), ..info.clone() }
                }
            };
            if let Err(e) = self.broadcast_meta(&updated).await {
                tracing::error!(frame = %info.frame_id, error = %e, "could not tell every worker of the frame's recovered chunks");
            }
        }
    }

    /// Chunks `lost` of a frame without a source: the surviving copy of each becomes the
    /// chunk of record where it is.
    async fn promote_copies(
        &self,
        info: &FrameInfo,
        lost: &[u32],
        members: &BTreeSet<NodeAddr>,
        held: &Holdings,
    ) -> Result<FrameInfo, String> {
        let mut chunks = info.chunks.clone();
        let mut by_holder: HashMap<NodeAddr, Vec<u32>> = HashMap::new();
        for chunk in chunks.iter_mut().filter(|c| lost.contains(&c.index)) {
            let index = chunk.index;
            let Some(holder) = chunk.replicas.iter().copied().find(|r| members.contains(r) && !held.copies.contains(&(index, *r))) else {
                return Err(format!(
                    "it was not read from a source (a Spark conversion, a group-by result or an Arrow Flight upload), so it cannot be read again, and chunk {} had no copy on another worker (--replicas 2 keeps one)",
                    chunk.index
                ));
            };
            by_holder.entry(holder).or_default().push(chunk.index);
            chunk.node = holder;
            chunk.replicas.retain(|r| *r != holder);
        }
        for (holder, indices) in by_holder {
            let mut client = self.client(holder).map_err(|e| e.to_string())?;
            client
                .promote_replicas(ChunkList { frame_id: info.frame_id.clone(), chunks: indices })
                .await
                .map_err(|s| format!("worker {holder}: {}", s.message()))?;
        }
        Ok(FrameInfo { chunks, ..info.clone() })
    }

    /// `recovered` without copies on workers that are gone, and with as many copies again as
    /// `before` had (as far as the survivors allow; a failure is logged, the frame stays).
    async fn copy_again(&self, mut recovered: FrameInfo, before: &FrameInfo, members: &BTreeSet<NodeAddr>, held: &Holdings) -> FrameInfo {
        for chunk in &mut recovered.chunks {
            let index = chunk.index;
            chunk.replicas.retain(|r| members.contains(r) && !held.copies.contains(&(index, *r)));
        }
        let copies = before.chunks.iter().map(|c| 1 + c.replicas.len()).max().unwrap_or(1);
        if copies <= 1 {
            return recovered;
        }
        // New copies go to healthy workers: wait until the cloud agrees again (a new worker
        // may be joining).
        if self.agreed_if(self.inner.state.me).await.is_none() {
            return recovered;
        }
        match self.with_replicas(recovered.clone(), Some(copies as u32)).await {
            Ok(copied) => copied,
            Err(e) => {
                tracing::warn!(frame = %recovered.frame_id, error = %e, "could not make the lost copies again");
                recovered
            }
        }
    }

    /// Registers a frame without a source on every node, then with `copies` of each chunk
    /// (default: the cloud's `--replicas`; a worker reads a chunk to copy through the frame's
    /// metadata, so the frame is registered first).
    pub(crate) async fn register_with_replicas(&self, info: FrameInfo, copies: Option<u32>) -> FrameResult<FrameInfo> {
        self.broadcast_meta(&info).await?;
        let copied = self.with_replicas(info.clone(), copies).await?;
        if copied != info {
            self.broadcast_meta(&copied).await?;
        }
        Ok(copied)
    }

    /// `info` with `copies` of each chunk (default: the cloud's `--replicas`), each on another
    /// worker: the workers after the chunk's own in address order that hold none yet. With
    /// fewer workers than copies, as many as there are workers (and a warning).
    pub(crate) async fn with_replicas(&self, mut info: FrameInfo, copies: Option<u32>) -> FrameResult<FrameInfo> {
        let wanted = copies.unwrap_or_else(|| self.inner.replicas.load(Ordering::Relaxed)).max(1) as usize;
        if wanted <= 1 {
            return Ok(info);
        }
        let workers = self.workers()?;
        if workers.len() < wanted {
            tracing::warn!(frame = %info.frame_id, wanted, workers = workers.len(), "fewer workers than copies asked for: one copy per worker");
        }
        let copies = wanted.min(workers.len());
        let mut plan = Vec::new();
        for (position, chunk) in info.chunks.iter().enumerate() {
            let start = workers.iter().position(|w| *w == chunk.node).unwrap_or(0);
            let mut missing = copies.saturating_sub(1 + chunk.replicas.len());
            for step in 1..workers.len() {
                let target = workers[(start + step) % workers.len()];
                if missing == 0 {
                    break;
                }
                if target != chunk.node && !chunk.replicas.contains(&target) {
                    plan.push((position, chunk.index, chunk.node, target));
                    missing -= 1;
                }
            }
        }
        let frame_id = info.frame_id.clone();
        let made: Vec<(usize, NodeAddr)> = futures::stream::iter(plan)
            .map(|(position, index, from, to)| {
                let frame_id = frame_id.clone();
                async move {
                    let data = self
                        .client(from)?
                        .get_chunk(ChunkRef { frame_id: frame_id.clone(), chunk: index })
                        .await
                        .map_err(|s| Self::remote(from, s))?
                        .into_inner();
                    self.client(to)?.put_chunk(ChunkData { replica: true, ..data }).await.map_err(|s| Self::remote(to, s))?;
                    FrameResult::Ok((position, to))
                }
            })
            // A few copies in flight: each holds a chunk's bytes on this node meanwhile.
            .buffer_unordered(4)
            .try_collect()
            .await?;
        for (position, to) in made {
            info.chunks[position].replicas.push(to);
        }
        Ok(info)
    }

    /// The members once they agree (a new worker may be joining), if this node is the one to
    /// act; None otherwise (another is, or they did not agree within [`AGREEMENT_WAIT`]: the
    /// next change tries again).
    async fn agreed_if(&self, acting: NodeAddr) -> Option<BTreeSet<NodeAddr>> {
        let deadline = tokio::time::Instant::now() + AGREEMENT_WAIT;
        loop {
            let view = self.inner.node.view();
            if acting != view.me {
                return None;
            }
            if view.consensus {
                return Some(view.members.iter().map(|m| m.addr).collect());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "the surviving workers did not agree within {} s; lost chunks are not recovered yet",
                    AGREEMENT_WAIT.as_secs()
                );
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reads chunks `lost` of an imported frame again from their splits, on `members`; the
    /// frame as it is afterwards, or why it cannot be.
    async fn read_again(&self, info: &FrameInfo, lost: &[u32], members: &BTreeSet<NodeAddr>, gone: &str) -> Result<FrameInfo, String> {
        let Some(recipe) = &info.recipe else {
            return Err("it was not read from a source (a Spark conversion, a group-by result or an Arrow Flight upload), so it cannot be read again".into());
        };
        // Each lost chunk goes to the survivor holding the fewest bytes of this frame so far.
        let mut held: HashMap<NodeAddr, u64> = members.iter().map(|m| (*m, 0)).collect();
        for c in info.chunks.iter().filter(|c| members.contains(&c.node)) {
            *held.entry(c.node).or_default() += c.bytes;
        }
        let old: HashMap<u32, &ChunkInfo> = info.chunks.iter().map(|c| (c.index, c)).collect();
        let mut calls: HashMap<NodeAddr, Vec<eddy_proto::v1::SplitSpec>> = HashMap::new();
        let mut shares = HashMap::new();
        for index in lost {
            let source =
                recipe.splits.iter().find(|s| s.split.chunk == *index).ok_or_else(|| format!("chunk {index} has no recorded split"))?;
            let (&target, _) = held.iter().min_by_key(|(addr, bytes)| (**bytes, **addr)).ok_or("no worker is left")?;
            *held.entry(target).or_default() += old.get(index).map_or(0, |c| c.bytes);
            calls.entry(target).or_default().push(crate::service::wire::split_spec(&source.split, source.start_in_quotes));
            shares.insert(*index, source.split.end.saturating_sub(source.split.start));
        }
        let (key, job) =
            self.inner.jobs.create(&format!("Read {} chunks of {} again (lost with worker {gone})", lost.len(), info.frame_id));
        tracing::info!(frame = %info.frame_id, job = %key, chunks = lost.len(), "reading lost chunks again from the source");
        let request = ParseSplitsRequest {
            frame_id: info.frame_id.clone(),
            setup: Some(crate::service::wire::setup(&recipe.setup)),
            storage: Some(crate::service::wire::storage(&self.inner.storage)),
            strict: recipe.strict,
            format: crate::service::wire::input_format(recipe.format) as i32,
            splits: Vec::new(),
        };
        let progress = Progress::new(&job, shares);
        let result = self.parse_round(&request, calls.into_iter().collect(), &progress).await;
        let outcome = result.map_err(|e| e.to_string()).and_then(|done| {
            let mut chunks = info.chunks.clone();
            for chunk in chunks.iter_mut().filter(|c| lost.contains(&c.index)) {
                let (node, d) = done.get(&chunk.index).ok_or_else(|| format!("chunk {} did not come back", chunk.index))?;
                if !d.parse_error.is_empty() {
                    return Err(format!("chunk {} on {node}: {}", chunk.index, d.parse_error));
                }
                if d.rows != chunk.rows {
                    return Err(format!(
                        "chunk {} has {} rows in the source now, {} when imported: the source changed, so it cannot be read again",
                        chunk.index, d.rows, chunk.rows
                    ));
                }
                chunk.node = *node;
                chunk.bytes = d.bytes_in_memory;
            }
            Ok(FrameInfo { bytes_in_memory: chunks.iter().map(|c| c.bytes).sum(), chunks, ..info.clone() })
        });
        job.update(|s| match &outcome {
            Ok(_) => {
                s.status = JobStatus::Done;
                s.progress = 1.0;
                s.dest = Some(info.frame_id.clone());
            }
            Err(e) => {
                s.status = JobStatus::Failed;
                s.error = Some(e.clone());
            }
        });
        outcome
    }

    /// Frame `id` if work can use it: not lost, and every chunk on a member.
    pub(crate) fn readable(&self, id: &str) -> FrameResult<FrameInfo> {
        let info = self.frame(id)?;
        if let Some(reason) = &info.lost {
            return Err(FrameError::FrameLost { id: id.into(), reason: reason.clone() });
        }
        if self.inner.state.lost.of(id).is_some() {
            return Err(FrameError::Cloud {
                reason: format!("frame {id} had chunks on a worker that left the cloud; they are being recovered: try again in a moment"),
            });
        }
        let view = self.inner.node.view();
        let gone: BTreeSet<String> =
            info.chunks.iter().filter(|c| !view.members.iter().any(|m| m.addr == c.node)).map(|c| c.node.to_string()).collect();
        if !gone.is_empty() {
            let gone = gone.into_iter().collect::<Vec<_>>().join(", ");
            let what = if info.recipe.is_some() { "they are being read again from the source" } else { "the frame is being marked lost" };
            return Err(FrameError::Cloud {
                reason: format!("frame {id} has chunks on worker {gone}, which left the cloud; {what}: try again in a moment"),
            });
        }
        Ok(info)
    }
}
