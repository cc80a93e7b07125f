//! The test DataNode: Hadoop's DataTransferProtocol (version 28) over TCP.
//!
//! - `READ_BLOCK` (op 81): answers `BlockOpResponseProto` with the checksum it will send, then
//!   packets of whole 512-byte chunks starting at the chunk that holds the requested offset
//!   (each packet: 4-byte payload length, 2-byte header length, `PacketHeaderProto`, one CRC32C
//!   per chunk, the data), then an empty last packet; it then reads the client's
//!   `ClientReadStatusProto`, and the connection may carry another operation.
//! - `WRITE_BLOCK` (op 80): accepts a pipeline of one node (no forwarding), verifies every
//!   chunk's CRC32C, acknowledges every packet (`PipelineAckProto`) including heartbeats, and
//!   keeps the block when the last packet arrives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use crc::{Crc, CRC_32_ISCSI};
use eddy_hadoop_ipc::proto::hdfs::{
    op_write_block_proto::BlockConstructionStage, BlockOpResponseProto, ChecksumProto, ChecksumTypeProto, ClientReadStatusProto,
    OpReadBlockProto, OpWriteBlockProto, PacketHeaderProto, PipelineAckProto, ReadOpChecksumInfoProto, Status,
};
use eddy_hadoop_ipc::server::spawn_accept_loop;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const DATA_TRANSFER_VERSION: u16 = 28;
const OP_WRITE_BLOCK: u8 = 80;
const OP_READ_BLOCK: u8 = 81;
const BYTES_PER_CHECKSUM: usize = 512;
/// Data bytes per read packet (Hadoop's default packet is 64 KiB).
const PACKET_DATA: usize = 128 * BYTES_PER_CHECKSUM;
const HEARTBEAT_SEQNO: i64 = -1;
const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// The blocks one DataNode holds, and what it served.
#[derive(Debug, Default)]
pub struct BlockStore {
    blocks: Mutex<HashMap<u64, Bytes>>,
    bytes_served: AtomicU64,
    reads: AtomicU64,
}

impl BlockStore {
    pub(crate) fn insert(&self, id: u64, data: Bytes) {
        if let Ok(mut b) = self.blocks.lock() {
            b.insert(id, data);
        }
    }
    pub(crate) fn remove(&self, id: u64) {
        if let Ok(mut b) = self.blocks.lock() {
            b.remove(&id);
        }
    }
    pub(crate) fn get(&self, id: u64) -> Option<Bytes> {
        self.blocks.lock().ok()?.get(&id).cloned()
    }
    /// Block data bytes sent to readers.
    pub fn bytes_served(&self) -> u64 {
        self.bytes_served.load(Ordering::Relaxed)
    }
    /// `READ_BLOCK` operations answered with data.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    /// How many blocks this node holds.
    pub fn block_count(&self) -> usize {
        self.blocks.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// A running DataNode; stopping it closes its listener and every connection.
#[derive(Debug)]
pub(crate) struct DataNode {
    pub addr: SocketAddr,
    pub store: Arc<BlockStore>,
    task: JoinHandle<()>,
}

impl DataNode {
    pub async fn start(ip: std::net::IpAddr, store: Arc<BlockStore>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let serving = Arc::clone(&store);
        let task = spawn_accept_loop(listener, "DataNode", move |stream| serve(stream, Arc::clone(&serving)));
        Ok(Self { addr, store, task })
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for DataNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn invalid(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

async fn read_varint<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<usize> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = r.read_u8().await?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value as usize);
        }
    }
    Err(invalid("varint longer than 10 bytes"))
}

async fn read_delimited<M: Message + Default, R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<M> {
    let len = read_varint(r).await?;
    if len > 1 << 20 {
        return Err(invalid(format!("a {len}-byte operation header is not plausible")));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    M::decode(&buf[..]).map_err(|e| invalid(e.to_string()))
}

async fn write_delimited<M: Message, W: AsyncWrite + Unpin>(w: &mut W, m: &M) -> std::io::Result<()> {
    w.write_all(&m.encode_length_delimited_to_vec()).await?;
    w.flush().await
}

fn error_response(message: String) -> BlockOpResponseProto {
    BlockOpResponseProto { status: Status::Error as i32, message: Some(message), ..Default::default() }
}

async fn serve(stream: TcpStream, store: Arc<BlockStore>) -> std::io::Result<()> {
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    loop {
        // A client may reuse the connection for another operation, or close it.
        let version = match r.read_u16().await {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if version != DATA_TRANSFER_VERSION {
            return Err(invalid(format!("data transfer version {version} is not {DATA_TRANSFER_VERSION}")));
        }
        match r.read_u8().await? {
            OP_READ_BLOCK => {
                let op: OpReadBlockProto = read_delimited(&mut r).await?;
                if !read_block(&mut r, &mut w, &store, op).await? {
                    return Ok(());
                }
            }
            OP_WRITE_BLOCK => {
                let op: OpWriteBlockProto = read_delimited(&mut r).await?;
                return write_block(&mut r, &mut w, &store, op).await;
            }
            other => {
                let response = BlockOpResponseProto {
                    status: Status::ErrorUnsupported as i32,
                    message: Some(format!("operation {other} is not supported by the test DataNode")),
                    ..Default::default()
                };
                return write_delimited(&mut w, &response).await;
            }
        }
    }
}

/// Serves one read; `Ok(false)` when the connection should close afterwards.
async fn read_block<R, W>(r: &mut R, w: &mut W, store: &BlockStore, op: OpReadBlockProto) -> std::io::Result<bool>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let block = &op.header.base_header.block;
    let Some(data) = store.get(block.block_id) else {
        write_delimited(w, &error_response(format!("Replica not found for blk_{}_{}", block.block_id, block.generation_stamp))).await?;
        return Ok(false);
    };
    let (offset, len) = (op.offset as usize, op.len as usize);
    if offset > data.len() || offset.saturating_add(len) > data.len() {
        let message = format!("Offset {offset} and length {len} don't match block blk_{} ( blockLen {} )", block.block_id, data.len());
        write_delimited(w, &error_response(message)).await?;
        return Ok(false);
    }
    let checksums = op.send_checksums.unwrap_or(true);
    // Whole chunks only, so that the reader can verify every checksum it gets.
    let start = offset / BYTES_PER_CHECKSUM * BYTES_PER_CHECKSUM;
    let end = (offset + len).div_ceil(BYTES_PER_CHECKSUM).saturating_mul(BYTES_PER_CHECKSUM).min(data.len());
    let checksum_type = if checksums { ChecksumTypeProto::ChecksumCrc32c } else { ChecksumTypeProto::ChecksumNull };
    let response = BlockOpResponseProto {
        status: Status::Success as i32,
        read_op_checksum_info: Some(ReadOpChecksumInfoProto {
            checksum: ChecksumProto { r#type: checksum_type as i32, bytes_per_checksum: BYTES_PER_CHECKSUM as u32 },
            chunk_offset: start as u64,
        }),
        ..Default::default()
    };
    write_delimited(w, &response).await?;

    let mut seqno = 0i64;
    let mut pos = start;
    while pos < end {
        let n = PACKET_DATA.min(end - pos);
        let chunk = &data[pos..pos + n];
        let sums: Vec<u8> =
            if checksums { chunk.chunks(BYTES_PER_CHECKSUM).flat_map(|c| CRC32C.checksum(c).to_be_bytes()).collect() } else { Vec::new() };
        write_packet(w, pos as i64, seqno, false, &sums, chunk).await?;
        pos += n;
        seqno += 1;
    }
    write_packet(w, end as i64, seqno, true, &[], &[]).await?;
    w.flush().await?;
    store.bytes_served.fetch_add((end - start) as u64, Ordering::Relaxed);
    store.reads.fetch_add(1, Ordering::Relaxed);
    // The reader acknowledges a complete read before it reuses the connection.
    let status: ClientReadStatusProto = read_delimited(r).await?;
    Ok(status.status == Status::Success as i32 || status.status == Status::ChecksumOk as i32)
}

async fn write_packet<W: AsyncWrite + Unpin>(
    w: &mut W,
    offset: i64,
    seqno: i64,
    last: bool,
    sums: &[u8],
    data: &[u8],
) -> std::io::Result<()> {
    let header = PacketHeaderProto {
        offset_in_block: offset,
        seqno,
        last_packet_in_block: last,
        data_len: data.len() as i32,
        sync_block: Some(false),
    };
    let header = header.encode_to_vec();
    let payload_len = (4 + sums.len() + data.len()) as u32;
    w.write_all(&payload_len.to_be_bytes()).await?;
    w.write_all(&(header.len() as u16).to_be_bytes()).await?;
    w.write_all(&header).await?;
    w.write_all(sums).await?;
    w.write_all(data).await
}

async fn write_block<R, W>(r: &mut R, w: &mut W, store: &BlockStore, op: OpWriteBlockProto) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let block_id = op.header.base_header.block.block_id;
    if !op.targets.is_empty() {
        let message = format!("the test DataNode keeps one replica and does not forward to {} more nodes", op.targets.len());
        return write_delimited(w, &error_response(message)).await;
    }
    let mut data = BytesMut::new();
    match BlockConstructionStage::try_from(op.stage) {
        Ok(BlockConstructionStage::PipelineSetupCreate) => {}
        Ok(BlockConstructionStage::PipelineSetupAppend) => {
            if let Some(existing) = store.get(block_id) {
                data.extend_from_slice(&existing);
            }
        }
        _ => {
            let message = format!("block construction stage {} is not supported by the test DataNode", op.stage);
            return write_delimited(w, &error_response(message)).await;
        }
    }
    let bytes_per_checksum = op.requested_checksum.bytes_per_checksum.max(1) as usize;
    let verify = op.requested_checksum.r#type == ChecksumTypeProto::ChecksumCrc32c as i32;
    write_delimited(w, &BlockOpResponseProto { status: Status::Success as i32, first_bad_link: Some(String::new()), ..Default::default() })
        .await?;

    loop {
        let payload_len = r.read_u32().await? as usize;
        let header_len = r.read_u16().await? as usize;
        let mut header = vec![0u8; header_len];
        r.read_exact(&mut header).await?;
        let header = PacketHeaderProto::decode(&header[..]).map_err(|e| invalid(e.to_string()))?;
        let data_len = usize::try_from(header.data_len).map_err(|_| invalid("negative packet length"))?;
        let sums_len = payload_len.checked_sub(4 + data_len).ok_or_else(|| invalid("packet lengths do not add up"))?;
        let mut sums = vec![0u8; sums_len];
        r.read_exact(&mut sums).await?;
        let mut packet = vec![0u8; data_len];
        r.read_exact(&mut packet).await?;

        let mut status = Status::Success;
        if header.seqno != HEARTBEAT_SEQNO && verify {
            let expected = packet.chunks(bytes_per_checksum).map(|c| CRC32C.checksum(c).to_be_bytes()).collect::<Vec<_>>().concat();
            if expected != sums {
                status = Status::ErrorChecksum;
            }
        }
        if header.seqno != HEARTBEAT_SEQNO && status == Status::Success {
            // A replayed packet after recovery starts at or before what we hold.
            let at = usize::try_from(header.offset_in_block).map_err(|_| invalid("negative offset"))?;
            if at > data.len() {
                return Err(invalid(format!("packet at offset {at} leaves a gap after {} bytes", data.len())));
            }
            data.truncate(at);
            data.extend_from_slice(&packet);
        }
        let ack = PipelineAckProto { seqno: header.seqno, reply: vec![status as i32], ..Default::default() };
        if header.last_packet_in_block && status == Status::Success {
            store.insert(block_id, std::mem::take(&mut data).freeze());
        }
        write_delimited(w, &ack).await?;
        if status != Status::Success {
            return Err(invalid(format!("checksum mismatch in packet {} of block {block_id}", header.seqno)));
        }
        if header.last_packet_in_block {
            return Ok(());
        }
    }
}
