//! Arrow IPC streams on the worker's internal port, for clients without a gRPC stack: the
//! Spark connector's JVM tasks. The same puts and gets as Arrow Flight ([`super::flight`]),
//! staged and committed the same way, over a plain connection (`eddy_node::stream_port`).
//!
//! The protocol, after the port's magic and TLS (numbers are big-endian `u32`):
//! 1. The client sends a header: its length, then JSON `{"token": ..., "op": "put" | "get", ...}`
//!    with the fields of a [`PutCommand`] or a [`GetTicket`]; `token` is the cloud's HMAC
//!    token (`eddy_common::auth`), good once.
//! 2. `put`: the client sends an Arrow IPC stream cut into frames (a length, then that many
//!    bytes); a frame of length 0 ends it. The worker answers with a length and JSON
//!    `{"reply": PutReply}` or `{"error": "..."}`.
//! 3. `get`: the worker answers with a length and JSON `{"rows": N}` or `{"error": "..."}`,
//!    then the chunk as an Arrow IPC stream, and closes. With `schema` (an Arrow IPC schema
//!    message, base64) the batches are cast to it: the reader's own types (Spark's
//!    microsecond times, strings for categoricals).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::{make_array, Array, ArrayRef, RecordBatch};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;
use base64::Engine;
use eddy_common::auth::AuthCheck;
use eddy_node::stream_port::{StreamHandler, StreamIo};
use futures::Stream;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tonic::Status;

use super::flight::{stage_chunk, GetTicket, Piece, PutCommand};
use super::{run_cpu, FrameState};
use crate::store::narrow::widen;

/// Longest header accepted.
const MAX_HEADER: usize = 1 << 20;
/// Longest frame of a put's stream accepted (clients send about 1 MiB).
const MAX_FRAME: usize = 256 << 20;

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Put {
        token: String,
        #[serde(flatten)]
        command: PutCommand,
    },
    Get {
        token: String,
        #[serde(flatten)]
        ticket: GetTicket,
        /// The reader's schema, an Arrow IPC schema message in base64.
        #[serde(default)]
        schema: Option<String>,
    },
}

/// Serves stream connections of one worker.
pub struct ArrowStreamService {
    pub(crate) state: Arc<FrameState>,
    pub(crate) auth: AuthCheck,
}

impl StreamHandler for ArrowStreamService {
    fn serve(&self, io: Box<dyn StreamIo>, peer: SocketAddr) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let (state, auth) = (self.state.clone(), self.auth.clone());
        Box::pin(async move {
            if let Err(e) = serve(state, auth, io).await {
                tracing::debug!(%peer, error = %e, "an Arrow stream connection ended early");
            }
        })
    }
}

async fn serve(state: Arc<FrameState>, auth: AuthCheck, io: Box<dyn StreamIo>) -> std::io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(io);
    let header = tokio::time::timeout(std::time::Duration::from_secs(30), read_frame(&mut reader, MAX_HEADER))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no header within 30 s"))??;
    let request: Request = match serde_json::from_slice(&header) {
        Ok(r) => r,
        Err(e) => return answer_error(&mut writer, &format!("the header must be JSON with \"op\": \"put\" or \"get\": {e}")).await,
    };
    let token = match &request {
        Request::Put { token, .. } | Request::Get { token, .. } => token,
    };
    if let Err(why) = auth.check(token) {
        tracing::warn!(reason = %why, "refused an Arrow stream connection");
        return answer_error(&mut writer, &format!("refused: {why}")).await;
    }
    match request {
        Request::Put { command, .. } => {
            let body = match stage_chunk(&state, command, Box::pin(ipc_pieces(&mut reader))).await {
                Ok(reply) => serde_json::json!({ "reply": reply }),
                Err(e) => serde_json::json!({ "error": e.message() }),
            };
            write_frame(&mut writer, &serde_json::to_vec(&body).unwrap_or_default()).await?;
            writer.shutdown().await
        }
        Request::Get { ticket, schema, .. } => send_chunk(&state, ticket, schema, &mut writer).await,
    }
}

async fn answer_error<W: AsyncWrite + Unpin>(writer: &mut W, message: &str) -> std::io::Result<()> {
    write_frame(writer, &serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default()).await?;
    writer.shutdown().await
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, limit: usize) -> std::io::Result<Vec<u8>> {
    let len = reader.read_u32().await? as usize;
    if len > limit {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a frame of {len} bytes is over the limit of {limit}")));
    }
    let mut bytes = vec![0u8; len];
    reader.read_exact(&mut bytes).await?;
    Ok(bytes)
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_u32(bytes.len() as u32).await?;
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// The pieces of a put's framed Arrow IPC stream, decoded as they arrive.
fn ipc_pieces<R: AsyncRead + Unpin + Send>(reader: R) -> impl Stream<Item = Result<Piece, Status>> + Send {
    struct Decoding<R> {
        reader: R,
        decoder: StreamDecoder,
        ready: VecDeque<Piece>,
        schema_sent: bool,
        done: bool,
    }
    let start = Decoding { reader, decoder: StreamDecoder::new(), ready: VecDeque::new(), schema_sent: false, done: false };
    futures::stream::unfold(start, |mut s| async move {
        loop {
            if let Some(piece) = s.ready.pop_front() {
                return Some((Ok(piece), s));
            }
            if s.done {
                return None;
            }
            let bytes = match read_frame(&mut s.reader, MAX_FRAME).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    s.done = true;
                    return Some((Err(Status::aborted(format!("the put's stream broke off: {e}"))), s));
                }
            };
            if bytes.is_empty() {
                s.done = true;
                if let Err(e) = s.decoder.finish() {
                    return Some((Err(Status::invalid_argument(format!("the put's Arrow stream ended inside a message: {e}"))), s));
                }
                if !s.schema_sent {
                    return Some((Err(Status::invalid_argument("the put's Arrow stream ended before its schema")), s));
                }
                continue;
            }
            let mut buffer = Buffer::from_vec(bytes);
            loop {
                match s.decoder.decode(&mut buffer) {
                    Ok(batch) => {
                        if !s.schema_sent {
                            if let Some(schema) = s.decoder.schema() {
                                s.ready.push_back(Piece::Schema(schema));
                                s.schema_sent = true;
                            }
                        }
                        match batch {
                            Some(b) => s.ready.push_back(Piece::Batch(b)),
                            None => break,
                        }
                    }
                    Err(e) => {
                        s.done = true;
                        return Some((Err(Status::invalid_argument(format!("malformed Arrow IPC stream: {e}"))), s));
                    }
                }
                if buffer.is_empty() {
                    break;
                }
            }
        }
    })
}

/// `batch` as the reader asked for it: every column cast to its field of `target`. A time
/// without a zone becomes one with the target's zone by its value (imported times are
/// milliseconds since the epoch in UTC), not shifted as a local time would be.
fn to_target(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, String> {
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(column, field)| -> Result<ArrayRef, String> {
            let wanted = field.data_type();
            if column.data_type() == wanted {
                return Ok(column.clone());
            }
            let fail =
                |e: arrow::error::ArrowError| format!("column {:?} ({}) cannot be read as {wanted}: {e}", field.name(), column.data_type());
            match (column.data_type(), wanted) {
                (DataType::Timestamp(_, None), DataType::Timestamp(unit, Some(_))) => {
                    let same_unit = arrow::compute::cast(column, &DataType::Timestamp(*unit, None)).map_err(fail)?;
                    let data = same_unit.to_data().into_builder().data_type(wanted.clone()).build().map_err(fail)?;
                    Ok(make_array(data))
                }
                _ => arrow::compute::cast(column, wanted).map_err(fail),
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(target.clone(), columns).map_err(|e| e.to_string())
}

/// The schema the reader named, checked against the frame's columns.
fn reader_schema(encoded: Option<String>, frame: &SchemaRef) -> Result<SchemaRef, String> {
    let Some(encoded) = encoded else {
        // Categoricals as strings, as Flight sends them to Spark.
        let fields: Vec<_> = frame
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, value) => Arc::new(f.as_ref().clone().with_data_type(value.as_ref().clone())),
                _ => f.clone(),
            })
            .collect();
        return Ok(Arc::new(Schema::new(fields)));
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| format!("\"schema\" is not base64: {e}"))?;
    let schema =
        arrow::ipc::convert::try_schema_from_ipc_buffer(&bytes).map_err(|e| format!("\"schema\" is not an Arrow IPC schema: {e}"))?;
    if schema.fields().len() != frame.fields().len() {
        return Err(format!("\"schema\" has {} columns, the frame {}", schema.fields().len(), frame.fields().len()));
    }
    Ok(Arc::new(schema))
}

async fn send_chunk<W: AsyncWrite + Unpin>(
    state: &FrameState,
    ticket: GetTicket,
    schema: Option<String>,
    writer: &mut W,
) -> std::io::Result<()> {
    let found = state.frame(&ticket.frame_id).and_then(|info| state.chunk(&ticket.frame_id, ticket.chunk).map(|chunk| (info, chunk)));
    let (info, chunk) = match found {
        Ok(found) => found,
        Err(e) => return answer_error(writer, e.message()).await,
    };
    let stored_schema = info.schema();
    let target = match reader_schema(schema, &stored_schema) {
        Ok(t) => t,
        Err(e) => return answer_error(writer, &e).await,
    };
    let header = serde_json::json!({ "rows": chunk.rows });
    write_frame(writer, &serde_json::to_vec(&header).unwrap_or_default()).await?;
    let mut ipc = StreamWriter::try_new(Vec::new(), &target).map_err(std::io::Error::other)?;
    for i in 0..chunk.batches.len() {
        let (chunk, stored_schema, target) = (chunk.clone(), stored_schema.clone(), target.clone());
        // Widened and cast on the rayon pool, a batch at a time as the client reads.
        let batch = run_cpu(move || -> Result<RecordBatch, String> {
            let wide = widen(&chunk.batches[i], &stored_schema).map_err(|e| e.to_string())?;
            to_target(&wide, &target)
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
        ipc.write(&batch).map_err(std::io::Error::other)?;
        let bytes = std::mem::take(ipc.get_mut());
        writer.write_all(&bytes).await?;
    }
    ipc.finish().map_err(std::io::Error::other)?;
    let bytes = std::mem::take(ipc.get_mut());
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    writer.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Int32Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Int32Type, TimeUnit};

    #[test]
    fn a_time_without_a_zone_is_relabelled_not_shifted_and_categoricals_become_strings() {
        let times = TimestampMillisecondArray::from(vec![Some(1_600_000_000_123), None]);
        let levels: DictionaryArray<Int32Type> = vec![Some("b"), Some("a")].into_iter().collect();
        let stored = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("c", levels.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(stored, vec![Arc::new(times), Arc::new(levels)]).unwrap();
        let target = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, Some("America/New_York".into())), true),
            Field::new("c", DataType::Utf8, true),
        ]));
        let out = to_target(&batch, &target).unwrap();
        let t = out.column(0).as_any().downcast_ref::<arrow::array::TimestampMicrosecondArray>().unwrap();
        assert_eq!(t.value(0), 1_600_000_000_123_000, "the instant is kept");
        assert!(t.is_null(1));
        let c = out.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((c.value(0), c.value(1)), ("b", "a"));
    }

    #[test]
    fn a_reader_schema_of_other_width_is_refused() {
        let frame = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]));
        let two = Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Int64, true)]);
        let mut ipc = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut ipc, &two).unwrap();
            w.finish().unwrap();
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(&ipc);
        let err = reader_schema(Some(encoded), &frame).unwrap_err();
        assert!(err.contains("2 columns, the frame 1"), "{err}");
        let defaulted = reader_schema(None, &frame).unwrap();
        assert_eq!(defaulted.field(0).data_type(), &DataType::Int32);
    }

    #[tokio::test]
    async fn a_framed_put_stream_decodes_to_its_schema_then_its_batches() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![1, 2, 3]))]).unwrap();
        let mut ipc = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut ipc, &schema).unwrap();
            w.write(&batch).unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap();
        }
        // Frames cut across message boundaries, as a client's 1 MiB buffer does.
        let mut wire = Vec::new();
        for piece in ipc.chunks(7) {
            wire.extend_from_slice(&(piece.len() as u32).to_be_bytes());
            wire.extend_from_slice(piece);
        }
        wire.extend_from_slice(&0u32.to_be_bytes());
        let pieces: Vec<_> = futures::StreamExt::collect::<Vec<_>>(ipc_pieces(&wire[..])).await;
        assert_eq!(pieces.len(), 3);
        assert!(matches!(&pieces[0], Ok(Piece::Schema(s)) if s.as_ref() == schema.as_ref()));
        assert!(matches!(&pieces[2], Ok(Piece::Batch(b)) if b.num_rows() == 3));

        // A stream that stops without its end marker is an error, not a short chunk.
        let cut = &wire[..wire.len() - 4];
        let pieces: Vec<_> = futures::StreamExt::collect::<Vec<_>>(ipc_pieces(cut)).await;
        assert!(pieces.last().unwrap().is_err());
    }
}
