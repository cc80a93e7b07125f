//! REST request bodies: the JSON the node deserialises before a handler sees it.
#![no_main]
use eddy_frame::groupby::GroupByRequest;
use eddy_frame::setup::SetupOverrides;
use eddy_frame::{CommitRequest, ExportRequest, ImportRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ImportRequest>(data);
    let _ = serde_json::from_slice::<GroupByRequest>(data);
    let _ = serde_json::from_slice::<ExportRequest>(data);
    let _ = serde_json::from_slice::<CommitRequest>(data);
    if let Ok(overrides) = serde_json::from_slice::<SetupOverrides>(data) {
        if let Ok(setup) = eddy_frame::setup::guess(b"a,b\n1,2\n", true, "x.csv") {
            let _ = setup.apply(&overrides);
        }
    }
});
