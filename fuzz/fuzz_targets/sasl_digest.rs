//! SASL DIGEST-MD5 messages from the other side: directives, a client's response to our
//! challenge, a server's challenge to our client.
#![no_main]
use eddy_hadoop_ipc::sasl::{parse_directives, DigestClient, DigestServer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_directives(data);
    let server = DigestServer::new("", "default");
    let _ = server.verify(data, |_| Ok(b"password".to_vec()));
    let mut client = DigestClient::new(b"identifier", b"password", "", "default");
    let _ = client.respond(data);
    let _ = client.verify_server(data);
});
