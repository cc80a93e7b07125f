//! What each file of an import holds, told from its first bytes (then its name): a format
//! Eddy reads, a known format it does not, or bytes that are not text. Every file is looked
//! at, so a directory never has one format's bytes parsed as another's.

use futures::{StreamExt, TryStreamExt};

use crate::import::columnar::InputFormat;
use crate::storage::{read_range, FileEntry, StorageOptions};
use crate::{FrameError, FrameResult};

/// Bytes read from the start of every file.
const HEAD_BYTES: u64 = 4096;
/// Files looked at at once.
const IN_FLIGHT: usize = 16;

/// Formats that are recognised by their first bytes but not read.
const UNSUPPORTED: [(&[u8], &str); 6] = [
    (b"ORC", "an ORC file"),
    (b"Obj\x01", "an Avro file"),
    (b"SEQ", "a Hadoop SequenceFile"),
    (b"PK\x03\x04", "a zip archive"),
    (b"BZh", "a bzip2 file (supported compressions: .gz, .zst)"),
    (b"\xFD7zXZ\x00", "an xz file (supported compressions: .gz, .zst)"),
];

/// Why `head`, the first bytes of an uncompressed text file, is not text; `None` if it is.
/// NUL bytes never occur in text; other control bytes (not tab, line ends or form feed) are
/// rare in text, in any 8-bit encoding.
pub fn not_text(head: &[u8]) -> Option<String> {
    if let Some(at) = memchr::memchr(0, head) {
        return Some(format!("it holds a NUL byte at offset {at}, which text never does"));
    }
    let control = head.iter().filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C)) || b == 0x7F).count();
    (control * 20 > head.len()).then(|| format!("{control} of its first {} bytes are control characters", head.len()))
}

/// The format of one file from its first bytes and its name.
fn sniff(file: &FileEntry, head: &[u8]) -> FrameResult<InputFormat> {
    let refuse = |reason: String| FrameError::Parse {
        url: file.url.clone(),
        reason: format!("{reason}; Eddy imports CSV/TSV text (also .gz, .zst), Parquet and Arrow IPC files"),
    };
    if let Some((_, what)) = UNSUPPORTED.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Err(refuse(format!("it is {what}")));
    }
    let format = InputFormat::detect(&file.url, head);
    if format == InputFormat::Csv && !crate::import::csv::compressed(&file.url) {
        if let Some(why) = not_text(head) {
            return Err(refuse(format!("it is not text: {why}")));
        }
    }
    Ok(format)
}

/// The one format of every file in `files`; refuses a file that is not readable as any, and
/// a mix of formats, naming a file of each.
pub async fn format_of(files: &[FileEntry], storage: &StorageOptions) -> FrameResult<InputFormat> {
    // Owned entries: a stream of futures that borrow trips the compiler's lifetime checks.
    let formats: Vec<InputFormat> = futures::stream::iter(files.to_vec())
        .map(|f| {
            let storage = storage.clone();
            async move { sniff(&f, &read_range(&f.url, 0..f.size.min(HEAD_BYTES), &storage).await?) }
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await?;
    let first = formats.first().copied().unwrap_or_default();
    if let Some(other) = formats.iter().position(|f| *f != first) {
        return Err(FrameError::InvalidArgument {
            what: "path",
            reason: format!(
                "it mixes file formats: {} is {} and {} is {}; import each format on its own (a glob such as dir/*.csv picks one)",
                files[0].url,
                first.name(),
                files[other].url,
                formats[other].name()
            ),
        });
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str) -> FileEntry {
        FileEntry { url: url.into(), size: 100, block_size: None, blocks: Vec::new() }
    }

    #[test]
    fn text_in_any_encoding_is_text_and_random_bytes_are_not() {
        assert_eq!(not_text(b"a,b\n1,\"x\ty\"\r\n"), None);
        assert_eq!(not_text("naïve,café\n".as_bytes()), None);
        assert_eq!(not_text(b"na\xefve,caf\xe9\n"), None, "Latin-1 is text");
        assert!(not_text(b"a,b\n\x001,2\n").unwrap().contains("NUL byte at offset 4"));
        // Bytes from a simple generator, as a random file holds.
        let mut x = 0x2545_f491_u32;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        assert!(not_text(&random).is_some());
    }

    #[test]
    fn formats_are_told_by_content_then_name() {
        assert_eq!(sniff(&entry("f"), b"PAR1....").unwrap(), InputFormat::Parquet);
        assert_eq!(sniff(&entry("x.arrow"), b"").unwrap(), InputFormat::Arrow);
        assert_eq!(sniff(&entry("x.csv.gz"), b"\x1f\x8b\x08\x00\x00").unwrap(), InputFormat::Csv);
        let err = sniff(&entry("part-0.orc"), b"ORC\x0a").unwrap_err().to_string();
        assert!(err.contains("part-0.orc") && err.contains("ORC file") && err.contains("Parquet"), "{err}");
        let err = sniff(&entry("blob.bin"), b"\x00\x01\x02").unwrap_err().to_string();
        assert!(err.contains("not text"), "{err}");
    }
}
