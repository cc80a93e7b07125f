//! Splitting files into byte ranges that workers parse independently.
//!
//! The rule: split `[start, end)` owns every record whose first byte lies in `[start, end)`.
//! A record starts at byte 0 or right after a newline that lies outside quotes (RFC 4180: a
//! quoted field may hold newlines; `""` inside one is two quote bytes, so the parity of the
//! quote bytes before a position tells whether it lies inside quotes). So a split with
//! `start > 0` begins after the first unquoted newline at or after `start - 1`, and reads
//! past `end` to the first unquoted newline at or after `end - 1`. Adjacent splits meet
//! exactly, with no record lost or read twice.
//!
//! A worker cannot see the quotes before its split, so it is told whether its split starts
//! inside quotes. The import first assumes every split starts outside quotes (true for any
//! file without quoted newlines); each split reports the quote bytes of its range, and the
//! splits whose true start parity turns out odd are parsed again with the right one
//! ([`starts_in_quotes`]). A split that started right tracks the parity through its own
//! bytes, so its end is right too.

use serde::{Deserialize, Serialize};

use crate::storage::FileEntry;

/// Default split size: 64 MiB.
pub const DEFAULT_SPLIT_BYTES: u64 = 64 << 20;

/// One unit of parsing work.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Split {
    /// The file.
    pub url: String,
    /// Nominal first byte.
    pub start: u64,
    /// Nominal end (exclusive).
    pub end: u64,
    /// The file's size.
    pub file_size: u64,
    /// Index of the chunk this split becomes.
    pub chunk: u32,
    /// The first line of the file is a header (skipped by the split at 0).
    pub skip_header: bool,
    /// Hosts holding the block the split starts in (HDFS), preferred when placing it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// Cuts `files` into splits of about `split_bytes` (files that must be read whole are one split).
///
/// Files with a block size (HDFS) are cut at block boundaries, so that each split is read
/// from one block: whole blocks are grouped when blocks are smaller than `split_bytes`, and a
/// larger block is cut into equal parts of at most `split_bytes`.
pub fn plan(files: &[FileEntry], split_bytes: u64, skip_header: bool, splittable: impl Fn(&FileEntry) -> bool) -> Vec<Split> {
    let mut out = Vec::new();
    for f in files {
        for (start, end) in boundaries(f, split_bytes.max(1), splittable(f)) {
            let hosts = hosts_at(f, start);
            out.push(Split { url: f.url.clone(), start, end, file_size: f.size, chunk: out.len() as u32, skip_header, hosts });
        }
    }
    out
}

/// Hosts with a replica of the block that holds byte `offset` of `f` (none if unknown).
pub fn hosts_at(f: &FileEntry, offset: u64) -> Vec<String> {
    f.blocks.iter().find(|b| b.offset <= offset && offset < b.offset + b.length.max(1)).map(|b| b.hosts.clone()).unwrap_or_default()
}

fn boundaries(f: &FileEntry, split_bytes: u64, splittable: bool) -> Vec<(u64, u64)> {
    if !splittable || f.size == 0 {
        return vec![(0, f.size)];
    }
    let mut cuts = vec![0u64];
    match f.block_size.filter(|b| *b > 0) {
        Some(block) if block <= split_bytes => {
            let step = block * (split_bytes / block);
            cuts.extend((1..).map(|k| k * step).take_while(|&c| c < f.size));
        }
        Some(block) => {
            let parts = block.div_ceil(split_bytes);
            let mut block_start = 0;
            while block_start < f.size {
                for p in 1..=parts {
                    let c = block_start + block * p / parts;
                    if c < f.size {
                        cuts.push(c);
                    }
                }
                block_start += block;
            }
        }
        None => cuts.extend((1..).map(|k| k * split_bytes).take_while(|&c| c < f.size)),
    }
    cuts.push(f.size);
    cuts.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Assigns splits to workers (given by host), largest first, each to the least loaded worker;
/// a split whose block has a replica on a worker's host goes to the least loaded such worker
/// unless that would take it more than half a largest split beyond its fair share (the
/// total over the workers): locality, but never at the price of a lopsided import.
///
/// The bound is the fair share, not the least loaded worker of the moment: splits come
/// largest first, so the blocks of one file, all on one host, come one after the other, and
/// a bound by the current least loaded worker sent every other one of them elsewhere (found
/// against a real HDFS, `a_file_per_host_is_read_on_its_host`).
pub fn assign(splits: &[Split], worker_hosts: &[String]) -> Vec<Vec<Split>> {
    let n = worker_hosts.len().max(1);
    let mut buckets: Vec<(u64, Vec<Split>)> = vec![(0, Vec::new()); n];
    let mut order: Vec<&Split> = splits.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse(s.end - s.start));
    let largest = order.first().map(|s| s.end - s.start).unwrap_or(0);
    let total: u64 = splits.iter().map(|s| s.end - s.start).sum();
    let cap = total.div_ceil(n as u64) + largest / 2;
    for s in order {
        let least = (0..n).min_by_key(|&i| buckets[i].0).unwrap_or(0);
        let local = (0..n)
            .filter(|&i| worker_hosts.get(i).is_some_and(|h| s.hosts.contains(h)))
            .min_by_key(|&i| buckets[i].0)
            .filter(|&i| buckets[i].0 + (s.end - s.start) <= cap);
        let b = &mut buckets[local.unwrap_or(least)];
        b.0 += s.end - s.start;
        b.1.push(s.clone());
    }
    buckets
        .into_iter()
        .map(|(_, mut v)| {
            v.sort_by_key(|s| s.chunk);
            v
        })
        .collect()
}

/// The quote byte of CSV.
pub const QUOTE: u8 = b'"';

/// Quote bytes in `data`.
pub fn count_quotes(data: &[u8]) -> u64 {
    memchr::memchr_iter(QUOTE, data).count() as u64
}

/// Just past the first newline at or after `from` that lies outside quotes, given whether
/// the byte at `from` is reached inside quotes; `None` if `buf` ends first.
pub fn next_record_start(buf: &[u8], from: usize, mut in_quotes: bool) -> Option<usize> {
    let mut at = from;
    loop {
        let found = at + memchr::memchr2(b'\n', QUOTE, buf.get(at..)?)?;
        if buf[found] == QUOTE {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            return Some(found + 1);
        }
        at = found + 1;
    }
}

/// Whether each split starts inside quotes, from the quote bytes each split's nominal range
/// holds (`quotes[i]` for `splits[i]`): the parity of all quotes before it in its file.
pub fn starts_in_quotes(splits: &[Split], quotes: &[u64]) -> Vec<bool> {
    let mut order: Vec<usize> = (0..splits.len()).collect();
    order.sort_by(|&a, &b| (&splits[a].url, splits[a].start).cmp(&(&splits[b].url, splits[b].start)));
    let mut out = vec![false; splits.len()];
    let mut parity = false;
    for (k, &i) in order.iter().enumerate() {
        if k == 0 || splits[order[k - 1]].url != splits[i].url {
            parity = false;
        }
        out[i] = parity;
        parity ^= quotes.get(i).copied().unwrap_or(0) % 2 == 1;
    }
    out
}

/// Where the records of a split begin inside `buf`, which holds the file from byte
/// `buf_start`; `in_quotes` says whether byte `split_start` is reached inside quotes.
/// `None` if no record starts in the split (or the buffer ends first).
pub fn record_start(buf: &[u8], buf_start: u64, split_start: u64, in_quotes: bool) -> Option<usize> {
    if split_start == 0 {
        return Some(0);
    }
    debug_assert!(buf_start < split_start, "the buffer must include the byte before the split");
    let from = usize::try_from(split_start - 1 - buf_start).ok()?;
    // The state at `split_start` counts the byte before it; step back over that byte.
    let before = in_quotes ^ (*buf.get(from)? == QUOTE);
    next_record_start(buf, from, before)
}

/// Where the records of a split end inside `buf`: after the first unquoted newline at or
/// after byte `split_end - 1`, tracking quotes from `first`, a record start in `buf`.
/// `None` means the buffer ends first: read more (or it is the last record of the file,
/// when the buffer reaches the end of the file).
pub fn record_end(buf: &[u8], buf_start: u64, split_end: u64, first: usize) -> Option<usize> {
    let from = usize::try_from(split_end.saturating_sub(1).saturating_sub(buf_start)).ok()?.max(first);
    let in_quotes = count_quotes(buf.get(first..from)?) % 2 == 1;
    next_record_start(buf, from, in_quotes)
}

/// The records of `data`, which starts at a record start, each with its line end.
pub fn records(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let quoted = memchr::memchr(QUOTE, data).is_some();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= data.len() {
            return None;
        }
        let end = if quoted { next_record_start(data, start, false) } else { memchr::memchr(b'\n', &data[start..]).map(|i| start + i + 1) }
            .unwrap_or(data.len());
        let record = &data[start..end];
        start = end;
        Some(record)
    })
}

/// Cuts `data` (starting at a record start) at record ends into about `parts` pieces for
/// parallel parsing; `quoted` says whether `data` may hold a quote (a caller that counted
/// them saves a pass over the data).
pub fn pieces(data: &[u8], parts: usize, quoted: bool) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(parts);
    let target = data.len() / parts.max(1) + 1;
    let mut start = 0;
    while start < data.len() {
        let probe = (start + target).min(data.len());
        let end = if probe >= data.len() {
            data.len()
        } else if quoted {
            let in_quotes = count_quotes(&data[start..probe]) % 2 == 1;
            next_record_start(data, probe, in_quotes).unwrap_or(data.len())
        } else {
            memchr::memchr(b'\n', &data[probe..]).map_or(data.len(), |i| probe + i + 1)
        };
        out.push(&data[start..end]);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The records a split owns, by the rule, computed from the whole file.
    fn owned(file: &[u8], start: u64, end: u64, in_quotes: bool) -> &[u8] {
        let s = record_start(file, 0, start, in_quotes).unwrap_or(file.len());
        if s as u64 >= end.max(1) && start > 0 || s >= file.len() {
            return &[];
        }
        let e = record_end(file, 0, end, s).unwrap_or(file.len());
        if s >= e {
            &[]
        } else {
            &file[s..e]
        }
    }

    /// A CSV record: fields plain or quoted (with separators, newlines and doubled quotes).
    fn record() -> impl Strategy<Value = String> {
        let field = prop_oneof!["[a-z0-9]{1,6}", "[a-z,\n\"]{0,10}".prop_map(|f| format!("\"{}\"", f.replace('"', "\"\""))),];
        proptest::collection::vec(field, 1..4).prop_map(|f| f.join(","))
    }

    /// Splits of `file`, told whether they start in quotes as the import works it out.
    fn quote_aware_splits(file: &[u8], split: u64) -> Vec<(Split, bool)> {
        let f = FileEntry { url: "f".into(), size: file.len() as u64, block_size: None, blocks: Vec::new() };
        let splits = plan(&[f], split, false, |_| true);
        let quotes: Vec<u64> = splits.iter().map(|s| count_quotes(&file[s.start as usize..s.end as usize])).collect();
        let parity = starts_in_quotes(&splits, &quotes);
        splits.into_iter().zip(parity).collect()
    }

    proptest! {
        #[test]
        fn splits_partition_the_records_exactly(
            lines in proptest::collection::vec("[a-z0-9,]{0,12}", 1..60),
            trailing_newline in any::<bool>(),
            split in 1u64..40,
        ) {
            let mut text = lines.join("\n");
            if trailing_newline { text.push('\n'); }
            let file = text.as_bytes();
            let f = FileEntry { url: "f".into(), size: file.len() as u64, block_size: None, blocks: Vec::new() };
            let splits = plan(&[f], split, false, |_| true);
            let mut joined = Vec::new();
            for s in &splits {
                joined.extend_from_slice(owned(file, s.start, s.end, false));
            }
            prop_assert_eq!(joined, file.to_vec());
        }

        #[test]
        fn windowed_reads_agree_with_whole_file_reads(
            lines in proptest::collection::vec("[a-z]{0,30}", 2..40),
            split in 1u64..50,
        ) {
            let text = lines.join("\n") + "\n";
            let file = text.as_bytes();
            for s in plan(&[FileEntry { url: "f".into(), size: file.len() as u64, block_size: None, blocks: Vec::new() }], split, false, |_| true) {
                // A worker reads from one byte before the split.
                let buf_start = s.start.saturating_sub(1);
                let buf = &file[buf_start as usize..];
                let whole_s = record_start(file, 0, s.start, false);
                let win_s = record_start(buf, buf_start, s.start, false).map(|i| i + buf_start as usize);
                prop_assert_eq!(whole_s, win_s);
            }
        }

        #[test]
        fn hdfs_splits_follow_block_boundaries(size in 0u64..5000, block in 1u64..700, split in 1u64..700) {
            let f = FileEntry { url: "f".into(), size, block_size: Some(block), blocks: Vec::new() };
            let splits = plan(&[f], split, false, |_| true);
            prop_assert_eq!(splits[0].start, 0);
            prop_assert_eq!(splits.last().map(|s| s.end), Some(size));
            for w in splits.windows(2) {
                prop_assert_eq!(w[0].end, w[1].start);
            }
            for s in splits.iter().filter(|s| s.end > s.start) {
                if block > split {
                    // Inside one block, and no longer than asked.
                    prop_assert_eq!(s.start / block, (s.end - 1) / block, "{:?} crosses a block", (s.start, s.end));
                    prop_assert!(s.end - s.start <= split);
                } else {
                    // Whole blocks.
                    prop_assert_eq!(s.start % block, 0);
                    prop_assert!(s.end % block == 0 || s.end == size);
                }
            }
        }

        #[test]
        fn quoted_newlines_stay_inside_their_record(
            rows in proptest::collection::vec(record(), 1..30),
            trailing_newline in any::<bool>(),
            split in 1u64..60,
            parts in 1usize..6,
        ) {
            let mut text = rows.join("\n");
            if trailing_newline { text.push('\n'); }
            let file = text.as_bytes();
            let expected: Vec<&[u8]> = records(file).collect();
            prop_assert_eq!(expected.len(), rows.len());
            let mut joined = Vec::new();
            for (s, in_quotes) in quote_aware_splits(file, split) {
                let mine = owned(file, s.start, s.end, in_quotes);
                // Whatever a split owns is whole records.
                prop_assert_eq!(records(mine).count(), records(mine).filter(|r| expected.contains(r)).count());
                joined.extend_from_slice(mine);
            }
            prop_assert_eq!(joined, file.to_vec());
            for piece in pieces(file, parts, true) {
                prop_assert!(records(piece).all(|r| expected.contains(&r)), "a piece cut a record");
            }
        }

        #[test]
        fn pieces_cover_the_data(data in "[a-z\n]{0,200}", parts in 1usize..8) {
            let p = pieces(data.as_bytes(), parts, true);
            prop_assert_eq!(p.concat(), data.as_bytes().to_vec());
            for piece in &p[..p.len().saturating_sub(1)] {
                prop_assert!(piece.ends_with(b"\n"));
            }
        }
    }

    #[test]
    fn assignment_balances_bytes() {
        let files = [
            FileEntry { url: "a".into(), size: 100, block_size: None, blocks: Vec::new() },
            FileEntry { url: "b".into(), size: 35, block_size: None, blocks: Vec::new() },
        ];
        let splits = plan(&files, 30, true, |f| f.url == "a");
        assert_eq!(splits.len(), 5);
        assert_eq!(splits.iter().map(|s| s.chunk).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        let a = assign(&splits, &["w1".to_string(), "w2".to_string()]);
        let load: Vec<u64> = a.iter().map(|v| v.iter().map(|s| s.end - s.start).sum()).collect();
        assert_eq!(load.iter().sum::<u64>(), 135);
        assert!(load[0].abs_diff(load[1]) <= 35, "{load:?}");
    }

    #[test]
    fn a_file_per_host_is_read_on_its_host() {
        use crate::storage::BlockLocation;
        // As `hdfs dfs -put` from a DataNode's host with one replica: every block of a file on
        // that host. The files differ a little in size, as real ones do.
        let file = |url: &str, size: u64, host: &str| FileEntry {
            url: url.into(),
            size,
            block_size: Some(100),
            blocks: (0..size.div_ceil(100)).map(|i| BlockLocation { offset: i * 100, length: 100, hosts: vec![host.into()] }).collect(),
        };
        let files = [file("a", 340, "10.0.0.2"), file("b", 360, "10.0.0.3")];
        let splits = plan(&files, 100, false, |_| true);
        assert_eq!(splits.len(), 8);
        let a = assign(&splits, &["10.0.0.2".to_string(), "10.0.0.3".to_string()]);
        assert!(a[0].iter().all(|s| s.url == "a") && a[1].iter().all(|s| s.url == "b"), "{a:?}");
    }

    #[test]
    fn splits_go_to_the_host_of_their_block_without_unbalancing() {
        use crate::storage::BlockLocation;
        let block = |offset, host: &str| BlockLocation { offset, length: 100, hosts: vec![host.to_string(), "10.0.0.9".to_string()] };
        let f = FileEntry {
            url: "hdfs://nn:8020/f".into(),
            size: 400,
            block_size: Some(100),
            blocks: vec![block(0, "10.0.0.1"), block(100, "10.0.0.2"), block(200, "10.0.0.2"), block(300, "10.0.0.2")],
        };
        let splits = plan(&[f], 100, false, |_| true);
        assert_eq!(splits[1].hosts, ["10.0.0.2", "10.0.0.9"]);
        let workers = ["10.0.0.1".to_string(), "10.0.0.2".to_string()];
        let a = assign(&splits, &workers);
        let starts = |v: &Vec<Split>| v.iter().map(|s| s.start).collect::<Vec<_>>();
        assert!(starts(&a[0]).contains(&0), "block 0 lives on 10.0.0.1: {a:?}");
        // Three blocks on 10.0.0.2, but the import stays balanced: two splits each.
        assert_eq!((a[0].len(), a[1].len()), (2, 2));
        assert!(starts(&a[1]).iter().all(|s| *s >= 100));
        // No worker on the block's hosts: placement by size alone.
        let a = assign(&splits, &["10.9.9.9".to_string(), "10.9.9.8".to_string()]);
        assert_eq!((a[0].len(), a[1].len()), (2, 2));
    }
}
