//! The direct CSV decoder against arrow-csv: with the setup guessed from the bytes (read as
//! data, no header), the direct decoder declines or gives exactly arrow-csv's batches.
#![no_main]
use eddy_frame::setup::{guess, SetupOverrides};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(setup) = guess(data, true, "fuzz.csv") else { return };
    let Ok(setup) = setup.apply(&SetupOverrides { header: Some(false), ..Default::default() }) else { return };
    if let Err(difference) = eddy_frame::fuzz_compare_direct_with_general(data, &setup) {
        panic!("{difference}\ninput: {:?}", String::from_utf8_lossy(data));
    }
});
