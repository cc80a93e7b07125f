//! The Arrow Flight data path on an in-process cloud of two workers: staged puts, commit,
//! summary against an independent fold, reads back, and the ways a put or commit is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Float64Type};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightClient, FlightDescriptor, Ticket};
use eddy_common::NodeAddr;
use eddy_frame::flight::{GetTicket, PutCommand, PutReply};
use eddy_frame::meta::ChunkInfo;
use eddy_frame::CommitRequest;
use futures::TryStreamExt;
use support::{cloud, Cloud};

/// A Flight client and, when authenticated, what it stamps each call with: a node accepts a
/// token once, so every call gets a fresh one.
struct Client {
    flight: FlightClient,
    stamp: Option<(eddy_common::ClusterSecret, String)>,
}

impl Client {
    fn stamped(&mut self) -> &mut FlightClient {
        if let Some((secret, cloud)) = &self.stamp {
            self.flight.add_header(eddy_common::auth::AUTH_METADATA_KEY, &secret.token(cloud)).unwrap();
        }
        &mut self.flight
    }
}

fn flight_client(c: &Cloud, node: NodeAddr, authenticated: bool) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(node.grpc_uri()).unwrap().connect_lazy();
    let flight = FlightClient::new_from_inner(
        FlightServiceClient::new(channel).max_decoding_message_size(256 << 20).max_encoding_message_size(256 << 20),
    );
    let stamp = authenticated.then(|| (c.secret.clone(), c.nodes[0].options().cloud_name.clone()));
    Client { flight, stamp }
}

/// `rows` rows starting at `first`: an int32, a real with gaps, a string and a µs time.
fn batch(first: usize, rows: usize) -> RecordBatch {
    let ids: Int32Array = (first..first + rows).map(|i| Some(i as i32 - 50_000)).collect();
    let xs: Float64Array = (first..first + rows).map(|i| (i % 11 != 0).then(|| (i as f64).sqrt() * 1.000_1)).collect();
    let names: StringArray = (first..first + rows).map(|i| (i % 17 != 0).then(|| format!("n{}", i % 5))).collect();
    let ts: TimestampMicrosecondArray = (first..first + rows).map(|i| Some(1_700_000_000_000_000 + i as i64 * 1_234_567)).collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(ids) as ArrayRef),
        ("x", Arc::new(xs) as ArrayRef),
        ("name", Arc::new(names) as ArrayRef),
        ("t", Arc::new(ts.with_timezone("UTC")) as ArrayRef),
    ])
    .unwrap()
}

async fn put(client: &mut Client, frame: &str, chunk: u32, batches: Vec<RecordBatch>) -> Result<PutReply, FlightError> {
    let schema = batches[0].schema();
    put_with_schema(client, frame, chunk, schema, batches).await
}

/// A put of `batches` (maybe none: an empty Spark partition) under `schema`.
async fn put_with_schema(
    client: &mut Client,
    frame: &str,
    chunk: u32,
    schema: arrow::datatypes::SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<PutReply, FlightError> {
    let categorical = if schema.field_with_name("name").is_ok() { vec!["name".into()] } else { vec![] };
    let command = PutCommand { frame_id: frame.into(), chunk, categorical };
    let descriptor = FlightDescriptor::new_cmd(serde_json::to_vec(&command).unwrap());
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_flight_descriptor(Some(descriptor))
        .build(futures::stream::iter(batches.into_iter().map(Ok)));
    let results: Vec<_> = client.stamped().do_put(data).await?.try_collect().await?;
    assert_eq!(results.len(), 1);
    Ok(serde_json::from_slice(&results[0].app_metadata).unwrap())
}

async fn get(client: &mut Client, frame: &str, chunk: u32) -> Vec<RecordBatch> {
    get_with(client, frame, chunk, false).await
}

async fn get_with(client: &mut Client, frame: &str, chunk: u32, dictionaries: bool) -> Vec<RecordBatch> {
    let ticket = Ticket::new(serde_json::to_vec(&GetTicket { frame_id: frame.into(), chunk, dictionaries }).unwrap());
    client.stamped().do_get(ticket).await.unwrap().try_collect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_puts_commit_into_a_frame_that_reads_back_exactly() {
    let c = cloud(2, 1 << 30).await;
    let (a, b) = (c.nodes[0].addr(), c.nodes[1].addr());
    let mut to_a = flight_client(&c, a, true);
    let mut to_b = flight_client(&c, b, true);
    // Chunk 0: more rows than one stored batch, in Spark's 10 000-row batches.
    let chunk0: Vec<RecordBatch> = (0..8).map(|k| batch(k * 10_000, 10_000)).collect();
    let chunk1 = vec![batch(80_000, 5_000)];
    let r0 = put(&mut to_a, "sp.hex", 0, chunk0.clone()).await.unwrap();
    // A first attempt of chunk 1 lands on A and is superseded by the one on B.
    put(&mut to_a, "sp.hex", 1, vec![batch(0, 100)]).await.unwrap();
    let r1 = put(&mut to_b, "sp.hex", 1, chunk1.clone()).await.unwrap();
    assert_eq!((r0.node, r0.rows, r1.node, r1.rows), (a, 80_000, b, 5_000));
    assert_eq!(r0.columns, r1.columns);
    // An empty partition still sends its schema and becomes an empty chunk.
    let r2 = put_with_schema(&mut to_b, "sp.hex", 2, chunk1[0].schema(), vec![]).await.unwrap();
    assert_eq!((r2.rows, &r2.columns), (0, &r0.columns));
    assert!(c.frames[0].frame("sp.hex").is_err(), "a put is staged, not registered");

    let request = CommitRequest {
        columns: r0.columns.clone(),
        chunks: [&r0, &r1, &r2].iter().map(|r| ChunkInfo::new(r.chunk, r.node, r.rows, r.bytes)).collect(),
        sources: vec!["test".into()],
        replicas: None,
    };
    let info = c.frames[1].commit("sp.hex", request.clone()).await.unwrap();
    assert_eq!(info.rows, 85_000);
    assert_eq!(c.frames[0].frame("sp.hex").unwrap(), info, "registered on every node");
    assert_eq!(c.nodes[0].view().members.len(), 2);
    let a_bytes: u64 = info.chunks.iter().filter(|ch| ch.node == a).map(|ch| ch.bytes).sum();
    assert_eq!(c.nodes[0].data_bytes(), a_bytes, "the stale chunk 1 on A was dropped by the commit");

    // Summary against a plain fold over the batches that were sent.
    let sent = concat_batches(&chunk0[0].schema(), chunk0.iter().chain(&chunk1)).unwrap();
    let xs = sent.column(1).as_primitive::<Float64Type>();
    let present: Vec<f64> = xs.iter().flatten().collect();
    let mean = present.iter().sum::<f64>() / present.len() as f64;
    let summary = c.frames[0].summary("sp.hex", eddy_frame::summary::DEFAULT_BINS).await.unwrap();
    let x = serde_json::to_value(&summary[1]).unwrap();
    assert_eq!(x["missing"].as_u64().unwrap(), xs.null_count() as u64);
    assert!((x["mean"].as_f64().unwrap() - mean).abs() < 1e-9 * mean.abs());
    let name = serde_json::to_value(&summary[2]).unwrap();
    assert_eq!(name["cardinality"].as_u64(), Some(5), "{name}");

    // Each chunk comes back with its original types (the categorical as strings).
    for (chunk, node, sent) in [(0u32, a, &chunk0), (1, b, &chunk1)] {
        let mut client = if node == a { flight_client(&c, a, true) } else { flight_client(&c, b, true) };
        let back = get(&mut client, "sp.hex", chunk).await;
        let back = concat_batches(&back[0].schema(), &back).unwrap();
        let want = concat_batches(&sent[0].schema(), sent.iter()).unwrap();
        assert_eq!(back.schema().field(3).data_type(), want.schema().field(3).data_type());
        assert_eq!(back.schema().field(2).data_type(), &DataType::Utf8);
        for i in 0..want.num_columns() {
            assert_eq!(back.column(i).data_type(), want.column(i).data_type(), "chunk {chunk} column {i}");
            assert_eq!(back.column(i).to_data(), want.column(i).to_data(), "chunk {chunk} column {i}");
        }
        // Asked for dictionaries, the categorical keeps them; its values are the same strings.
        let coded = get_with(&mut client, "sp.hex", chunk, true).await;
        let coded = concat_batches(&coded[0].schema(), &coded).unwrap();
        assert!(matches!(coded.schema().field(2).data_type(), DataType::Dictionary(_, _)), "{:?}", coded.schema());
        let strings = arrow::compute::cast(coded.column(2), &DataType::Utf8).unwrap();
        assert_eq!(strings.to_data(), want.column(2).to_data(), "chunk {chunk}: the categorical's values");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_and_commits_are_refused_with_reasons_and_leave_nothing_behind() {
    let c = cloud(2, 4 << 20).await;
    let (a, b) = (c.nodes[0].addr(), c.nodes[1].addr());

    // No token: refused before any data is taken.
    let err = put(&mut flight_client(&c, a, false), "x.hex", 0, vec![batch(0, 10)]).await.unwrap_err().to_string();
    assert!(err.contains("no authentication token"), "{err}");

    // More than the worker's budget: refused while streaming.
    let big: Vec<RecordBatch> = (0..20).map(|k| batch(k * 10_000, 10_000)).collect();
    let err = put(&mut flight_client(&c, a, true), "big.hex", 0, big).await.unwrap_err().to_string();
    assert!(err.contains("free") && err.contains("chunk 0 of big.hex"), "{err}");
    assert_eq!(c.nodes[0].view().members.len(), 2);

    // A commit naming a chunk its node does not hold: an error, and nothing registered.
    let mut to_a = flight_client(&c, a, true);
    let r = put(&mut to_a, "y.hex", 0, vec![batch(0, 1000)]).await.unwrap();
    let wrong = CommitRequest {
        columns: r.columns.clone(),
        chunks: vec![ChunkInfo::new(0, a, r.rows, r.bytes), ChunkInfo::new(1, b, 10, 10)],
        sources: vec![],
        replicas: None,
    };
    let err = c.frames[0].commit("y.hex", wrong).await.unwrap_err().to_string();
    assert!(err.contains("chunk 1 of y.hex is not on"), "{err}");
    assert!(c.frames[0].frame("y.hex").is_err() && c.frames[1].frame("y.hex").is_err());
    // The staged chunk was swept too: a commit of it alone now fails.
    let alone =
        CommitRequest { columns: r.columns.clone(), chunks: vec![ChunkInfo::new(0, a, r.rows, r.bytes)], sources: vec![], replicas: None };
    assert!(c.frames[0].commit("y.hex", alone).await.is_err());

    // Puts into a registered frame are refused.
    let r = put(&mut to_a, "z.hex", 0, vec![batch(0, 10)]).await.unwrap();
    let ok =
        CommitRequest { columns: r.columns.clone(), chunks: vec![ChunkInfo::new(0, a, r.rows, r.bytes)], sources: vec![], replicas: None };
    c.frames[0].commit("z.hex", ok.clone()).await.unwrap();
    let err = put(&mut to_a, "z.hex", 1, vec![batch(0, 10)]).await.unwrap_err().to_string();
    assert!(err.contains("registered"), "{err}");
    let err = c.frames[0].commit("z.hex", ok).await.unwrap_err().to_string();
    assert!(err.contains("registered already"), "{err}");

    // Types a frame cannot hold are named.
    let blob = arrow::array::BinaryArray::from(vec![Some(b"x".as_slice()), None]);
    let bad = RecordBatch::try_from_iter([("blob", Arc::new(blob) as ArrayRef)]).unwrap();
    let err = put(&mut to_a, "d.hex", 0, vec![bad]).await.unwrap_err().to_string();
    assert!(err.contains("blob") && err.contains("Binary") && err.contains("cast"), "{err}");
}
