//! Flatfiles (`ip:port` per line, comments, names), as `eddy-mapper --flatfile` reads them.
#![no_main]
use eddy_embedded_config::parse_flatfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = parse_flatfile(std::path::Path::new("fuzz-flatfile.txt"), text);
});
