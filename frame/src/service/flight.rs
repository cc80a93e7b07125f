//! Arrow Flight on each worker's internal gRPC port: the data path for Spark (and any Arrow
//! client). `DoPut` streams batches into one chunk of a frame that is not registered yet;
//! `DoGet` streams one chunk of a registered frame back. Calls carry the same
//! `x-eddy-auth` token as every internal call (see `eddy_common::auth`), or a grant of the
//! frame they touch (`x-eddy-grant`, see `eddy_common::grant`) that the REST API gave a
//! client: `POST /3/Frames/{id}/grant` ([`FrameCloud::grant`]).
//!
//! A put is staged, not visible: the caller collects the replies of every put and commits
//! them with `POST /3/Frames/{id}/commit`, which registers the frame on every node; chunks
//! the commit does not list (a retried Spark task's first attempt) are dropped then.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, PollInfo,
    PutResult, SchemaResult, Ticket,
};
use eddy_common::grant::{Grant, GrantAccess};
use eddy_common::NodeAddr;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status, Streaming};

use crate::cloud::FrameCloud;
use crate::service::{run_cpu, status, FrameState};
use crate::store::ingest::{columns_for, compact, conform, slice_bytes};
use crate::store::meta::ColumnInfo;
use crate::store::meta::FrameInfo;
use crate::store::narrow::{narrow, widen};
use crate::store::Chunk;
use crate::{FrameError, FrameResult};

/// Rows gathered before they are narrowed and stored: Spark sends 10 000-row batches, and
/// fewer, larger stored batches narrow better and summarise faster.
const STORED_BATCH_ROWS: usize = 64 * 1024;

/// The `cmd` of a `DoPut` descriptor (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutCommand {
    /// The frame the chunk belongs to; it must not be registered yet.
    pub frame_id: String,
    /// The chunk's index in the frame (for Spark: the partition).
    pub chunk: u32,
    /// String columns to store as categoricals.
    #[serde(default)]
    pub categorical: Vec<String>,
}

/// The one `PutResult` of a `DoPut` (JSON in `app_metadata`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PutReply {
    /// The worker now holding the chunk.
    pub node: NodeAddr,
    /// The chunk's index.
    pub chunk: u32,
    /// Rows stored.
    pub rows: u64,
    /// Bytes in memory.
    pub bytes: u64,
    /// The frame columns the data became.
    pub columns: Vec<ColumnInfo>,
}

/// The `Ticket` of a `DoGet` (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetTicket {
    /// A registered frame.
    pub frame_id: String,
    /// One of its chunks held by this worker.
    pub chunk: u32,
    /// Send categoricals as dictionaries (levels and codes) instead of strings: less to
    /// send and to decode for a client that keeps them (Python); Spark reads strings.
    #[serde(default)]
    pub dictionaries: bool,
}

/// The Flight service of one worker.
#[derive(Debug, Clone)]
pub struct FlightServer {
    /// Shared with the frame service on this node.
    pub state: Arc<FrameState>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not offered; Eddy workers serve DoPut (stage a chunk) and DoGet (read a chunk)"))
}

/// Refuses a call made with a grant that does not cover it (calls with a token carry none).
fn check_grant<T>(request: &Request<T>, access: GrantAccess, frame_id: &str) -> Result<(), Status> {
    match request.extensions().get::<Grant>() {
        Some(grant) => grant.allows(access, frame_id).map_err(Status::permission_denied),
        None => Ok(()),
    }
}

/// `POST /3/Frames/{id}/grant`: what a REST client needs to read or write a frame over Flight.
#[derive(Debug, Clone, Serialize)]
pub struct FlightAccess {
    /// For the `x-eddy-grant` header of every call.
    pub grant: String,
    /// When the grant expires (milliseconds since the Unix epoch).
    pub expires_at_ms: u64,
    /// The CA that signed the workers' certificates (PEM), to verify them with; `None` when
    /// the cloud's internal channels are plain TCP (`--internal-tls off`).
    pub tls_ca: Option<String>,
    /// The workers (Flight listens on each one's `grpc_port`): for writes, where to put chunks.
    pub workers: Vec<NodeAddr>,
    /// For reads, the frame: its columns and where each chunk lives.
    pub frame: Option<FrameInfo>,
}

impl FrameCloud {
    /// A grant of `access` to frame `id`, with what a client needs to use it. Reading needs
    /// the frame to exist; writing needs it not to exist yet.
    pub fn grant(&self, id: &str, access: GrantAccess) -> FrameResult<FlightAccess> {
        let frame = match access {
            GrantAccess::Read => Some(self.readable(id)?),
            GrantAccess::Write => {
                if self.frame(id).is_ok() {
                    return Err(FrameError::InvalidArgument {
                        what: "frame id",
                        reason: format!("frame {id:?} exists; write under a new id, or delete it first"),
                    });
                }
                None
            }
        };
        let options = self.inner.node.options();
        let grant = Grant::new(access, id);
        Ok(FlightAccess {
            grant: grant.sign(&options.secret, &options.cloud_name),
            expires_at_ms: grant.expires_millis,
            tls_ca: options.internal_tls.as_ref().map(|tls| tls.ca_pem().to_string()),
            workers: self.workers()?,
            frame,
        })
    }
}

fn flight_status(e: FlightError) -> Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => Status::invalid_argument(format!("malformed Arrow Flight data: {other}")),
    }
}

/// What a put's stream carries, whatever the wire (Flight or a plain Arrow IPC stream).
pub(crate) enum Piece {
    /// The batches' schema: first, and also when no batch follows.
    Schema(SchemaRef),
    /// Rows.
    Batch(RecordBatch),
}

/// Stores the batches of one put as one chunk (staged, see the module's text); returns what
/// was stored.
pub(crate) async fn stage_chunk(
    state: &FrameState,
    command: PutCommand,
    mut pieces: impl Stream<Item = Result<Piece, Status>> + Unpin,
) -> Result<PutReply, Status> {
    state.refuse_registered(&command.frame_id)?;
    let what = format!("chunk {} of {}", command.chunk, command.frame_id);
    let mut reservation = state.store.reserve(0, &what).map_err(status)?;
    let mut stored: Vec<RecordBatch> = Vec::new();
    let mut stored_bytes = 0u64;
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_bytes = 0u64;
    let mut layout_opt = None;
    loop {
        let next = match pieces.next().await.transpose()? {
            Some(Piece::Schema(schema)) => {
                if layout_opt.is_none() {
                    layout_opt = Some(columns_for(&schema, &command.categorical).map_err(status)?);
                }
                continue;
            }
            Some(Piece::Batch(b)) => Some(b),
            None => None,
        };
        let end = next.is_none();
        if let Some(b) = next {
            pending_bytes += slice_bytes(&b);
            pending.push(b);
            // Count what arrived until it is narrowed, so a put that will not fit stops early.
            state.store.resize(&mut reservation, stored_bytes + pending_bytes, &what).map_err(status)?;
        }
        let rows: usize = pending.iter().map(RecordBatch::num_rows).sum();
        if (end && rows > 0) || rows >= STORED_BATCH_ROWS {
            let Some((_, target)) = &layout_opt else {
                return Err(Status::invalid_argument("the stream sent batches before its schema"));
            };
            let target = target.clone();
            let group = std::mem::take(&mut pending);
            pending_bytes = 0;
            let batch = run_cpu(move || {
                let whole = concat_batches(&group[0].schema(), &group)?;
                compact(narrow(conform(&whole, &target)?)?)
            })
            .await
            .map_err(status)?
            .map_err(status)?;
            stored_bytes += batch.get_array_memory_size() as u64;
            stored.push(batch);
            state.store.resize(&mut reservation, stored_bytes, &what).map_err(status)?;
        }
        if end {
            break;
        }
    }
    let Some((columns, _)) = layout_opt else {
        return Err(Status::invalid_argument("the stream ended before its schema; send the schema even for no rows"));
    };
    // Checked again: the frame may have been committed while this put streamed.
    state.refuse_registered(&command.frame_id)?;
    let chunk = Chunk::new(stored);
    let reply = PutReply { node: state.me, chunk: command.chunk, rows: chunk.rows, bytes: chunk.bytes, columns };
    state.store.insert(&command.frame_id, command.chunk, chunk, reservation);
    tracing::debug!(frame = %command.frame_id, chunk = command.chunk, rows = reply.rows, bytes = reply.bytes, "chunk staged");
    Ok(reply)
}

#[tonic::async_trait]
impl FlightService for FlightServer {
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = BoxStream<FlightData>;
    type DoPutStream = BoxStream<PutResult>;
    type DoExchangeStream = BoxStream<FlightData>;
    type DoActionStream = BoxStream<arrow_flight::Result>;
    type ListActionsStream = BoxStream<ActionType>;

    async fn do_put(&self, mut request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        let first = request.get_mut().message().await?.ok_or_else(|| Status::invalid_argument("the put sent nothing"))?;
        let descriptor = first.flight_descriptor.clone().unwrap_or_default();
        let command: PutCommand = serde_json::from_slice(&descriptor.cmd).map_err(|e| {
            Status::invalid_argument(format!(
                "the descriptor's cmd must be JSON {{\"frame_id\": ..., \"chunk\": N, \"categorical\": [...]}}: {e}"
            ))
        })?;
        check_grant(&request, GrantAccess::Write, &command.frame_id)?;
        let input = request.into_inner();
        let data = futures::stream::once(async move { Ok(first) }).chain(input).map_err(FlightError::from);
        let pieces = FlightDataDecoder::new(data).filter_map(|decoded| async move {
            match decoded {
                Ok(d) => match d.payload {
                    DecodedPayload::Schema(schema) => Some(Ok(Piece::Schema(schema))),
                    DecodedPayload::RecordBatch(b) => Some(Ok(Piece::Batch(b))),
                    DecodedPayload::None => None,
                },
                Err(e) => Some(Err(flight_status(e))),
            }
        });
        let reply = stage_chunk(&self.state, command, Box::pin(pieces)).await?;
        let json = serde_json::to_vec(&reply).map_err(|e| Status::internal(e.to_string()))?;
        let result = PutResult { app_metadata: json.into() };
        Ok(Response::new(Box::pin(futures::stream::once(async move { Ok(result) }))))
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket: GetTicket = serde_json::from_slice(&request.get_ref().ticket)
            .map_err(|e| Status::invalid_argument(format!("the ticket must be JSON {{\"frame_id\": ..., \"chunk\": N}}: {e}")))?;
        check_grant(&request, GrantAccess::Read, &ticket.frame_id)?;
        let info = self.state.frame(&ticket.frame_id)?;
        let chunk = self.state.chunk(&ticket.frame_id, ticket.chunk)?;
        let schema = info.schema();
        let wide_schema = schema.clone();
        // Widened one batch at a time as the client reads, on the rayon pool.
        let batches = futures::stream::iter(0..chunk.batches.len()).then(move |i| {
            let (chunk, schema) = (chunk.clone(), wide_schema.clone());
            async move {
                run_cpu(move || widen(&chunk.batches[i], &schema))
                    .await
                    .and_then(|r| r)
                    .map_err(|e| FlightError::ExternalError(Box::new(e)))
            }
        });
        // Categoricals go out as plain strings (the encoder's default), which is what Spark
        // reads, or with their dictionary, sent again with each batch (each batch has its own).
        let handling = if ticket.dictionaries { DictionaryHandling::Resend } else { DictionaryHandling::Hydrate };
        let encoded =
            FlightDataEncoderBuilder::new().with_dictionary_handling(handling).with_schema(schema).build(batches).map_err(Status::from);
        Ok(Response::new(Box::pin(encoded)))
    }

    async fn handshake(&self, _: Request<Streaming<HandshakeRequest>>) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(unsupported("Handshake (calls authenticate with the x-eddy-auth header)"))
    }

    async fn list_flights(&self, _: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(unsupported("ListFlights (GET /3/Frames lists frames)"))
    }

    async fn get_flight_info(&self, _: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported("GetFlightInfo (GET /3/Frames/{id} names each chunk's node)"))
    }

    async fn poll_flight_info(&self, _: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(unsupported("PollFlightInfo"))
    }

    async fn get_schema(&self, _: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Err(unsupported("GetSchema"))
    }

    async fn do_exchange(&self, _: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(unsupported("DoExchange"))
    }

    async fn do_action(&self, _: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(unsupported("DoAction"))
    }

    async fn list_actions(&self, _: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Err(unsupported("ListActions"))
    }
}
