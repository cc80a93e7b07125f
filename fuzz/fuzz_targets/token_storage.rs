//! Hadoop token storage files (the containers' `container_tokens`, `--token-file`).
#![no_main]
use eddy_hadoop_ipc::credentials::Credentials;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(credentials) = Credentials::from_bytes(data) {
        // What we read, we can write and read back the same.
        let again = Credentials::from_bytes(&credentials.to_bytes()).expect("our own bytes read back");
        assert_eq!(again, credentials);
    }
});
