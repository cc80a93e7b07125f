//! Parse-setup guessing, then the CSV parser (direct decoder or the general path) with the
//! guessed setup, on any bytes: an answer or an error, never a panic.
#![no_main]
use eddy_frame::parse::parse;
use eddy_frame::setup::guess;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(setup) = guess(data, true, "fuzz.csv") else { return };
    for quoted in [false, true] {
        if let Ok(parsed) = parse(data, 0, quoted, &setup, "fuzz.csv", false) {
            let lines = data.iter().filter(|b| **b == b'\n').count() + 1;
            let rows: usize = parsed.batches.iter().map(|b| b.num_rows()).sum();
            assert!(rows <= lines, "{rows} rows from {lines} lines");
        }
    }
});
