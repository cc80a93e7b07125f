//! Compressed text inputs (`.gz`, `.zst`). They cannot be split, so one worker reads each
//! file whole; byte offsets in bad-value reports then count in the decompressed text.

use std::io::Read;

use crate::{FrameError, FrameResult};

/// A compression this build reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// gzip (also concatenated members).
    Gzip,
    /// Zstandard.
    Zstd,
}

/// The codec a file name implies; `Err` for compressions this build does not read.
pub fn codec_of(url: &str) -> FrameResult<Option<Codec>> {
    if url.ends_with(".gz") {
        return Ok(Some(Codec::Gzip));
    }
    if url.ends_with(".zst") {
        return Ok(Some(Codec::Zstd));
    }
    if [".bz2", ".xz", ".zip", ".snappy", ".lz4"].iter().any(|s| url.ends_with(s)) {
        return Err(FrameError::InvalidArgument {
            what: "path",
            reason: format!("{url}: this build reads .gz and .zst compressed text, not this compression"),
        });
    }
    Ok(None)
}

fn reader<'a>(codec: Codec, data: &'a [u8]) -> FrameResult<Box<dyn Read + 'a>> {
    Ok(match codec {
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Codec::Zstd => Box::new(
            zstd::stream::read::Decoder::new(data)
                .map_err(|e| FrameError::Internal { what: "opening a zstd stream", reason: e.to_string() })?,
        ),
    })
}

/// Decompresses a whole file; a truncated or corrupt file is an error naming it.
pub fn decompress(codec: Codec, data: &[u8], url: &str) -> FrameResult<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 4);
    reader(codec, data)?
        .read_to_end(&mut out)
        .map_err(|e| FrameError::Parse { url: url.into(), reason: format!("cannot decompress: {e} (truncated or corrupt file?)") })?;
    Ok(out)
}

/// Decompresses at most `limit` bytes from the start of a (possibly partial) file, for the
/// parse-setup sample. Returns the text and whether it is the whole file.
pub fn sample(codec: Codec, head: &[u8], head_is_whole_file: bool, limit: usize) -> FrameResult<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut r = reader(codec, head)?.take(limit as u64 + 1);
    let complete = r.read_to_end(&mut out).is_ok();
    let whole = complete && head_is_whole_file && out.len() <= limit;
    out.truncate(limit);
    Ok((out, whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_and_zstd_round_trip_and_truncation_is_an_error() {
        let text: Vec<u8> = (0..5000u64).flat_map(|i| format!("{i},{}\n", i.wrapping_mul(2654435761) % 100_003).into_bytes()).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(Codec::Gzip, &gz, "x.gz").unwrap(), text);
        let zs = zstd::encode_all(&text[..], 3).unwrap();
        assert_eq!(decompress(Codec::Zstd, &zs, "x.zst").unwrap(), text);
        let err = decompress(Codec::Gzip, &gz[..gz.len() / 2], "cut.gz").unwrap_err().to_string();
        assert!(err.contains("cut.gz"), "{err}");
        let (s, whole) = sample(Codec::Gzip, &gz[..gz.len() / 2], false, 64).unwrap();
        assert_eq!((s.len(), whole), (64, false));
        assert!(codec_of("a.bz2").is_err());
        assert_eq!(codec_of("a.csv").unwrap(), None);
    }
}
