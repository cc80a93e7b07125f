//! gzip, zstd and the other readers of compressed input on any bytes: data or an error.
#![no_main]
use eddy_frame::compression::{codec_of, decompress, sample};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for url in ["f.csv.gz", "f.csv.zst", "f.csv.bz2", "f.csv.zip", "f.csv.snappy"] {
        let Ok(Some(codec)) = codec_of(url) else { continue };
        let _ = decompress(codec, data, url);
        let _ = sample(codec, data, true, 1 << 16);
        let _ = sample(codec, data, false, 1 << 10);
    }
});
