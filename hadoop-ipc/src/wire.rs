//! The bytes of Hadoop IPC (protocol version 9), as Hadoop's `Client` and `Server` write them:
//!
//! - A connection opens with the 7-byte preamble `"hrpc"`, version `9`, service class, and the
//!   auth protocol (`0` = none, `-33` = SASL).
//! - Every later message in either direction is a frame: a 4-byte big-endian length, then
//!   length-delimited protobuf messages. A request is `RpcRequestHeaderProto`,
//!   `RequestHeaderProto`, the request; a response is `RpcResponseHeaderProto`, then the
//!   response (on success).
//! - Reserved call ids: `-3` connection context, `-33` SASL, `-4` ping.

use bytes::{Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

/// First four bytes of every connection.
pub const MAGIC: &[u8; 4] = b"hrpc";
/// The IPC protocol version Hadoop 2 and 3 speak.
pub const IPC_VERSION: u8 = 9;
/// Auth protocol byte: no SASL (SIMPLE authentication by connection context only).
pub const AUTH_NONE: u8 = 0;
/// Auth protocol byte: SASL negotiation follows (`-33` as a signed byte).
pub const AUTH_SASL: u8 = 0xDF;
/// Call id of the connection context.
pub const CONNECTION_CONTEXT_CALL_ID: i32 = -3;
/// Call id of SASL messages.
pub const SASL_CALL_ID: i32 = -33;
/// Call id of pings.
pub const PING_CALL_ID: i32 = -4;
/// Largest frame accepted, Hadoop's `ipc.maximum.data.length` default (128 MiB).
pub const MAX_FRAME: usize = 128 << 20;

/// The preamble a client sends.
pub fn preamble(auth: u8) -> [u8; 7] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], IPC_VERSION, 0, auth]
}

/// Encodes one frame from messages that are each written length-delimited.
pub fn frame(messages: &[&dyn DelimitedMessage]) -> Vec<u8> {
    let len: usize = messages.iter().map(|m| m.delimited_len()).sum();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    for m in messages {
        m.write_delimited(&mut buf);
    }
    buf
}

/// Encodes a frame whose last part is an already encoded (not delimited) message body.
pub fn frame_with_body(headers: &[&dyn DelimitedMessage], body: &[u8]) -> Vec<u8> {
    let body_len = prost::length_delimiter_len(body.len()) + body.len();
    let len: usize = headers.iter().map(|m| m.delimited_len()).sum::<usize>() + body_len;
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    for m in headers {
        m.write_delimited(&mut buf);
    }
    // Writing into a Vec cannot run out of room.
    let _ = prost::encode_length_delimiter(body.len(), &mut buf);
    buf.extend_from_slice(body);
    buf
}

/// Object-safe view of a prost message written length-delimited.
pub trait DelimitedMessage {
    /// Bytes the message takes with its varint length prefix.
    fn delimited_len(&self) -> usize;
    /// Appends the message with its varint length prefix.
    fn write_delimited(&self, buf: &mut Vec<u8>);
}

impl<M: Message> DelimitedMessage for M {
    fn delimited_len(&self) -> usize {
        let n = self.encoded_len();
        prost::length_delimiter_len(n) + n
    }
    fn write_delimited(&self, buf: &mut Vec<u8>) {
        // Writing into a Vec cannot run out of room.
        let _ = self.encode_length_delimited(buf);
    }
}

/// Reads one frame; `Ok(None)` on a clean end of stream before the length.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    // A clean end is an end before the first byte; an end inside the length is a broken frame.
    if reader.read(&mut len[..1]).await? == 0 {
        return Ok(None);
    }
    reader.read_exact(&mut len[1..]).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is larger than the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut buf = BytesMut::zeroed(len);
    reader.read_exact(&mut buf).await?;
    Ok(Some(buf.freeze()))
}

/// Decodes the next length-delimited message of a frame.
pub fn next_message<M: Message + Default>(frame: &mut Bytes) -> Result<M, prost::DecodeError> {
    M::decode_length_delimited(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::common::{RequestHeaderProto, RpcRequestHeaderProto};

    #[tokio::test]
    async fn frames_round_trip() {
        let header = RpcRequestHeaderProto { call_id: 7, client_id: vec![1; 16], ..Default::default() };
        let request =
            RequestHeaderProto { method_name: "getFileInfo".into(), declaring_class_protocol_name: "p".into(), client_protocol_version: 1 };
        let bytes = frame_with_body(&[&header, &request], b"body");
        let mut reader = &bytes[..];
        let mut f = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!(next_message::<RpcRequestHeaderProto>(&mut f).unwrap().call_id, 7);
        assert_eq!(next_message::<RequestHeaderProto>(&mut f).unwrap().method_name, "getFileInfo");
        let body_len = prost::decode_length_delimiter(&mut f).unwrap();
        assert_eq!(&f[..body_len], b"body");
        assert!(read_frame(&mut reader).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_length_is_an_error() {
        let bytes = [0u8, 0];
        let mut reader = &bytes[..];
        assert!(read_frame(&mut reader).await.is_err());
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let bytes = (MAX_FRAME as u32 + 1).to_be_bytes();
        let mut reader = &bytes[..];
        assert!(read_frame(&mut reader).await.is_err());
    }
}
