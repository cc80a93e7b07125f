//! The deployment files, checked where no container engine runs: the runtime image of
//! `deploy/kubernetes/Dockerfile` holds both binaries and the CA certificates that TLS
//! imports (s3://, https://) verify servers with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;

/// The instructions of the Dockerfile's last stage (the image that ships), continuation
/// lines joined.
fn runtime_stage() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap();
    let joined = text.replace("\\\n", " ");
    let lines: Vec<String> = joined.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).expect("a FROM line");
    lines[last_from..].to_vec()
}

#[test]
fn the_runtime_image_has_ca_certificates_and_both_binaries() {
    let stage = runtime_stage();
    let installs_ca = stage.iter().any(|l| l.starts_with("RUN ") && l.contains("apt-get install") && l.contains("ca-certificates"));
    assert!(installs_ca, "the runtime stage installs no CA certificates: {stage:#?}");
    let copies: Vec<&String> = stage.iter().filter(|l| l.starts_with("COPY ")).collect();
    for binary in ["eddy-mapper", "eddy-driver"] {
        assert!(copies.iter().any(|l| l.contains(&format!("release/{binary}"))), "{binary} is not copied: {copies:#?}");
    }
    assert!(stage.iter().any(|l| l.starts_with("ENTRYPOINT") && l.contains("eddy-mapper")));
}
