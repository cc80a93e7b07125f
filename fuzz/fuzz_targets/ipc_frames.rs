//! Hadoop IPC frames from a peer: the length-delimited headers a frame starts with.
#![no_main]
use bytes::Bytes;
use eddy_hadoop_ipc::proto::common::{RequestHeaderProto, RpcRequestHeaderProto, RpcResponseHeaderProto, RpcSaslProto};
use eddy_hadoop_ipc::wire::next_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut frame = Bytes::copy_from_slice(data);
    if next_message::<RpcRequestHeaderProto>(&mut frame).is_ok() {
        let _ = next_message::<RequestHeaderProto>(&mut frame);
    }
    let mut frame = Bytes::copy_from_slice(data);
    if next_message::<RpcResponseHeaderProto>(&mut frame).is_ok() {
        let _ = next_message::<RpcSaslProto>(&mut frame);
    }
});
