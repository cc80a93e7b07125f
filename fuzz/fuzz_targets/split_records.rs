//! The split planner's record boundaries: pieces of a buffer cover it exactly, in order,
//! whatever the bytes and the number of pieces.
#![no_main]
use eddy_frame::split::{next_record_start, pieces, records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, bool, &[u8])| {
    let (parts, quoted, data) = input;
    let parts = usize::from(parts % 16) + 1;
    let joined: Vec<u8> = pieces(data, parts, quoted).concat();
    assert_eq!(joined, data, "pieces lost or repeated bytes");
    let total: usize = records(data).map(<[u8]>::len).sum();
    assert!(total <= data.len());
    if let Some(start) = next_record_start(data, 0, quoted) {
        assert!(start <= data.len());
    }
});
