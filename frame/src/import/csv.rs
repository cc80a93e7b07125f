//! CSV (and other delimited text), plain or compressed: the coordinator guesses the setup from
//! the first MiB and cuts files into byte-range splits at record boundaries; a worker reads its
//! split's whole records (quote state from the coordinator's count) and parses them.

use async_trait::async_trait;
use eddy_proto::v1::{SplitDone, SplitSpec};

use crate::import::format::{split_done, Format, Plan, SplitJob};
use crate::import::parse::parse;
use crate::import::setup::guess;
use crate::import::split::{count_quotes, plan, record_end, record_start, DEFAULT_SPLIT_BYTES};
use crate::service::{run_cpu, FrameState};
use crate::storage::{read_range, FileEntry, StorageOptions};
use crate::store::Chunk;
use crate::{FrameError, FrameResult, ImportRequest};

/// Bytes of the first file the setup is guessed from.
const SAMPLE_BYTES: u64 = 1 << 20;

/// Delimited text.
pub(crate) struct Csv;

/// Whether `url` names a compressed file (or one whose compression is not supported).
pub(crate) fn compressed(url: &str) -> bool {
    matches!(crate::import::compression::codec_of(url), Ok(Some(_)) | Err(_))
}

#[async_trait]
impl Format for Csv {
    async fn plan(&self, files: Vec<FileEntry>, request: &ImportRequest, workers: usize, storage: &StorageOptions) -> FrameResult<Plan> {
        for f in &files {
            crate::import::compression::codec_of(&f.url)?;
        }
        let total: u64 = files.iter().map(|f| f.size).sum();
        let first = &files[0];
        let (sample, whole) = match crate::import::compression::codec_of(&first.url)? {
            None => {
                let take = first.size.min(SAMPLE_BYTES);
                (read_range(&first.url, 0..take, storage).await?.to_vec(), take == first.size)
            }
            Some(codec) => {
                let take = first.size.min(4 * SAMPLE_BYTES);
                let head = read_range(&first.url, 0..take, storage).await?;
                crate::import::compression::sample(codec, &head, take == first.size, SAMPLE_BYTES as usize)?
            }
        };
        let setup = guess(&sample, whole, &first.url)?.apply(&request.parse_setup)?;
        // Small inputs still reach every worker: about two splits each, 256 KiB at least.
        let split_bytes =
            request.split_bytes.unwrap_or_else(|| (total / (2 * workers as u64).max(1)).clamp(256 << 10, DEFAULT_SPLIT_BYTES));
        let splits = plan(&files, split_bytes, setup.header, |f| !compressed(&f.url));
        let estimate = files.iter().map(|f| if compressed(&f.url) { f.size * 6 } else { f.size + f.size / 5 }).sum();
        Ok(Plan { files, setup, splits, estimate })
    }

    async fn read_split(&self, state: &FrameState, job: &SplitJob, s: &SplitSpec) -> FrameResult<SplitDone> {
        let span = s.end - s.start;
        // Arrow takes about 1.15x the CSV's bytes; reserve more, settle to the truth after.
        let estimate = span + span / 2 + (64 << 10);
        let what = format!("chunk {} of {} ({} bytes of {})", s.chunk, job.frame_id, span, s.url);
        let codec = crate::import::compression::codec_of(&s.url)?;
        let estimate = if codec.is_some() { s.file_size * 6 } else { estimate };
        let reservation = state.store.reserve(estimate, &what)?;
        let records = match codec {
            None => read_records(s, &job.storage).await?,
            Some(codec) => {
                let compressed = read_range(&s.url, 0..s.file_size, &job.storage).await?;
                let url = s.url.clone();
                let text = bytes::Bytes::from(run_cpu(move || crate::import::compression::decompress(codec, &compressed, &url)).await??);
                let first = first_record(&text, s.skip_header).unwrap_or(text.len());
                let quoted = memchr::memchr(crate::import::split::QUOTE, &text).is_some();
                SplitRecords { data: text.slice(first..), offset: first as u64, bytes_read: s.file_size, quotes: 0, quoted }
            }
        };
        let url = s.url.clone();
        let (data, setup, strict) = (records.data, job.setup.clone(), job.strict);
        let mut parsed = match run_cpu(move || parse(&data, records.offset, records.quoted, &setup, &url, strict)).await? {
            Ok(parsed) => parsed,
            Err(e @ FrameError::Parse { .. }) => {
                // The coordinator knows whether this split started in the right quote state.
                let empty = Chunk::new(Vec::new());
                return Ok(SplitDone {
                    quotes: records.quotes,
                    parse_error: e.to_string(),
                    ..split_done(s, &empty, records.bytes_read, None)
                });
            }
            Err(e) => return Err(e),
        };
        let chunk = Chunk::new(std::mem::take(&mut parsed.batches));
        let reply = SplitDone { quotes: records.quotes, ..split_done(s, &chunk, records.bytes_read, Some(&parsed)) };
        state.store.insert(&job.frame_id, s.chunk, chunk, reservation);
        Ok(reply)
    }
}

/// The records a split owns, read from storage.
struct SplitRecords {
    /// Whole records.
    data: bytes::Bytes,
    /// Their offset in the file.
    offset: u64,
    /// Bytes read from storage.
    bytes_read: u64,
    /// Quote bytes in the split's nominal range (for the start parity of the next split).
    quotes: u64,
    /// Whether `data` may hold a quote.
    quoted: bool,
}

/// UTF-8's byte-order mark, which some writers put before the first record.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where the first record of a file begins in `buf` (the file's first bytes): after a
/// byte-order mark, and past the header when there is one; `None` if the header goes on
/// past `buf`.
fn first_record(buf: &[u8], skip_header: bool) -> Option<usize> {
    let first = if buf.starts_with(BOM) { BOM.len() } else { 0 };
    if skip_header {
        crate::import::split::next_record_start(buf, first, false)
    } else {
        Some(first)
    }
}

/// Reads the records a split owns; `s.start_in_quotes` says whether its start lies inside a
/// quoted field.
async fn read_records(s: &SplitSpec, storage: &StorageOptions) -> FrameResult<SplitRecords> {
    const WINDOW: u64 = 64 << 10;
    let buf_start = s.start.saturating_sub(1);
    let mut buf_end = (s.end + WINDOW).min(s.file_size);
    // Kept as `Bytes` so the records are sliced out without copying the split.
    let mut buf = read_range(&s.url, buf_start..buf_end, storage).await?;
    let mut bytes_read = buf.len() as u64;
    let nominal = |buf: &[u8]| buf.get((s.start - buf_start) as usize..(s.end - buf_start) as usize).map(count_quotes);
    let quotes = nominal(&buf);
    // Records longer than the window: read on until the boundaries are found or the file ends.
    let (first, last) = loop {
        let first =
            if s.start == 0 { first_record(&buf, s.skip_header) } else { record_start(&buf, buf_start, s.start, s.start_in_quotes) };
        let owns_none = first.is_some_and(|f| s.start > 0 && buf_start + f as u64 >= s.end.max(1));
        let last = match first {
            Some(f) if !owns_none => record_end(&buf, buf_start, s.end.max(1), f),
            _ => None,
        };
        match (first, last) {
            _ if owns_none => break (0, 0),
            (Some(f), Some(l)) => break (f, l),
            _ if buf_end >= s.file_size => break (first.unwrap_or(buf.len()), buf.len()),
            _ => {
                let next = (buf_end + (buf.len() as u64).max(1 << 20)).min(s.file_size);
                let more = read_range(&s.url, buf_end..next, storage).await?;
                bytes_read += more.len() as u64;
                let mut joined = Vec::with_capacity(buf.len() + more.len());
                joined.extend_from_slice(&buf);
                joined.extend_from_slice(&more);
                buf = bytes::Bytes::from(joined);
                buf_end = next;
            }
        }
    };
    let quotes = quotes.or_else(|| nominal(&buf)).unwrap_or(0);
    let data = if first >= last { bytes::Bytes::new() } else { buf.slice(first..last) };
    // The records reach past the nominal range at either end (by a record at most): look for
    // quotes there, not again over the whole split.
    let (from, to) =
        ((s.start.saturating_sub(buf_start) as usize).clamp(first, last), (s.end.saturating_sub(buf_start) as usize).clamp(first, last));
    let quoted = quotes > 0
        || memchr::memchr(crate::import::split::QUOTE, &buf[first..from]).is_some()
        || memchr::memchr(crate::import::split::QUOTE, &buf[to..last]).is_some();
    Ok(SplitRecords { data, offset: buf_start + first as u64, bytes_read, quotes, quoted })
}
