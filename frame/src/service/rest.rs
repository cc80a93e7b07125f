//! Frame routes of the REST API (H2O-like paths).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use eddy_node::routes::Routes;
use serde::Deserialize;
use serde_json::json;

use crate::cloud::{CommitRequest, FrameCloud, ImportRequest};
use crate::import::setup::SetupOverrides;
use crate::FrameError;

/// The JSON Schema of a request body, every definition inlined (an OpenAPI document would
/// resolve `$ref`s against itself, not against the schema).
fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true).into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or_default();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
    }
    schema
}

/// The routes, with their state.
pub fn routes(cloud: FrameCloud) -> Routes {
    let stateful = |r: axum::routing::MethodRouter<FrameCloud>| r.with_state(cloud.clone());
    Routes::new()
        .route("/3/ImportFiles", stateful(post(import_files)), &[("POST", "import a file, directory or glob into a frame (starts a job)")])
        .route("/3/ParseSetup", stateful(post(parse_setup)), &[("POST", "the guessed parse setup of a CSV file, with overrides applied")])
        .route("/3/Jobs", stateful(get(jobs)), &[("GET", "the jobs started on this node, running and finished")])
        .route("/3/Jobs/{id}", stateful(get(job)), &[("GET", "a job's progress, rows, bad values and result")])
        .route("/3/Frames", stateful(get(frames)), &[("GET", "every frame: rows, columns, bytes, nodes")])
        .route(
            "/3/Frames/{id}",
            stateful(get(frame).delete(delete_frame)),
            &[("GET", "a frame and its rows (row_offset, row_count)"), ("DELETE", "delete a frame on every node")],
        )
        .route(
            "/3/Frames/{id}/summary",
            stateful(get(summary)),
            &[("GET", "per-column summary: count, missing, min, max, mean, sd, levels, histogram (bins, default 20, 0 for none)")],
        )
        .route("/3/Frames/{id}/groupby", stateful(post(group_by)), &[("POST", "group by columns with aggregates into a new frame")])
        .route("/3/Frames/{id}/export", stateful(post(export)), &[("POST", "write a frame as CSV or Parquet to any supported URL")])
        .route("/3/Frames/{id}/commit", stateful(post(commit)), &[("POST", "register chunks staged by Arrow Flight puts as a frame")])
        .route(
            "/3/Frames/{id}/grant",
            stateful(post(grant)),
            &[("POST", "a grant to read a frame's chunks, or put chunks of a new frame, over Arrow Flight (x-eddy-grant)")],
        )
        .body("POST", "/3/ImportFiles", schema_of::<ImportRequest>())
        .body("POST", "/3/ParseSetup", schema_of::<SetupRequest>())
        .body("POST", "/3/Frames/{id}/groupby", schema_of::<crate::compute::groupby::GroupByRequest>())
        .body("POST", "/3/Frames/{id}/export", schema_of::<crate::ExportRequest>())
        .body("POST", "/3/Frames/{id}/grant", schema_of::<GrantRequest>())
        .query(
            "GET",
            "/3/Frames/{id}",
            &[("row_offset", "integer", "first row [default: 0]"), ("row_count", "integer", "rows [default: 10, at most 10000]")],
        )
        .query(
            "GET",
            "/3/Frames/{id}/summary",
            &[("bins", "integer", "histogram bins per numeric column [default: 20, 0: none, at most 1000]")],
        )
}

fn error(e: FrameError) -> Response {
    let code = match &e {
        FrameError::FrameNotFound { .. } | FrameError::NotFound { .. } => StatusCode::NOT_FOUND,
        FrameError::FrameLost { .. } => StatusCode::GONE,
        FrameError::InvalidArgument { .. } | FrameError::InvalidUrl { .. } | FrameError::Parse { .. } => StatusCode::BAD_REQUEST,
        FrameError::OutOfMemory { .. } => StatusCode::INSUFFICIENT_STORAGE,
        FrameError::Cloud { .. } | FrameError::Worker { .. } | FrameError::Node(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, Json(json!({ "error": e.to_string() }))).into_response()
}

async fn import_files(State(cloud): State<FrameCloud>, Json(request): Json<ImportRequest>) -> Response {
    if request.path.trim().is_empty() {
        return error(FrameError::InvalidArgument { what: "path", reason: "it is empty".into() });
    }
    let key = cloud.start_import(request);
    (StatusCode::ACCEPTED, Json(json!({ "job": { "key": key }, "poll": format!("/3/Jobs/{key}") }))).into_response()
}

/// `POST /3/ParseSetup`.
#[derive(Deserialize, schemars::JsonSchema)]
struct SetupRequest {
    path: String,
    #[serde(default)]
    parse_setup: SetupOverrides,
}

async fn parse_setup(State(cloud): State<FrameCloud>, Json(request): Json<SetupRequest>) -> Response {
    match cloud.parse_setup(&request.path, &request.parse_setup).await {
        Ok((files, setup)) => Json(json!({ "files": files, "setup": setup })).into_response(),
        Err(e) => error(e),
    }
}

async fn jobs(State(cloud): State<FrameCloud>) -> Response {
    Json(json!({ "jobs": cloud.jobs() })).into_response()
}

async fn job(State(cloud): State<FrameCloud>, Path(id): Path<String>) -> Response {
    match cloud.job(&id) {
        Some(j) => Json(json!({ "jobs": [j] })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no job {id:?} on this node (jobs live on the node that started them)") })),
        )
            .into_response(),
    }
}

async fn frames(State(cloud): State<FrameCloud>) -> Response {
    let list: Vec<serde_json::Value> = cloud
        .frames()
        .iter()
        .map(|f| {
            json!({
                "frame_id": f.frame_id, "rows": f.rows, "columns": f.columns.len(),
                "bytes_in_memory": f.bytes_in_memory, "source_bytes": f.source_bytes,
                "nodes": f.nodes().iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "frames": list })).into_response()
}

#[derive(Deserialize)]
struct RowsQuery {
    #[serde(default)]
    row_offset: u64,
    #[serde(default = "default_rows")]
    row_count: u64,
}

fn default_rows() -> u64 {
    10
}

async fn frame(State(cloud): State<FrameCloud>, Path(id): Path<String>, Query(q): Query<RowsQuery>) -> Response {
    let info = match cloud.frame(&id) {
        Ok(i) => i,
        Err(e) => return error(e),
    };
    match cloud.rows(&id, q.row_offset, q.row_count).await {
        Ok(rows) => Json(json!({ "frame": info, "row_offset": q.row_offset, "rows": rows })).into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct SummaryQuery {
    bins: Option<usize>,
}

async fn summary(State(cloud): State<FrameCloud>, Path(id): Path<String>, Query(q): Query<SummaryQuery>) -> Response {
    let bins = q.bins.unwrap_or(crate::compute::summary::DEFAULT_BINS);
    if bins > crate::compute::summary::MAX_BINS {
        let reason = format!("at most {} bins per histogram", crate::compute::summary::MAX_BINS);
        return error(FrameError::InvalidArgument { what: "bins", reason });
    }
    match cloud.summary(&id, bins).await {
        Ok(columns) => Json(json!({ "frame_id": id, "columns": columns })).into_response(),
        Err(e) => error(e),
    }
}

async fn delete_frame(State(cloud): State<FrameCloud>, Path(id): Path<String>) -> Response {
    match cloud.delete(&id).await {
        Ok(()) => Json(json!({ "deleted": id })).into_response(),
        Err(e) => error(e),
    }
}

async fn group_by(
    State(cloud): State<FrameCloud>,
    Path(id): Path<String>,
    Json(request): Json<crate::compute::groupby::GroupByRequest>,
) -> Response {
    match cloud.group_by(&id, &request).await {
        Ok(info) => Json(json!({ "frame": info })).into_response(),
        Err(e) => error(e),
    }
}

async fn export(State(cloud): State<FrameCloud>, Path(id): Path<String>, Json(request): Json<crate::ExportRequest>) -> Response {
    match cloud.export(&id, &request).await {
        Ok(result) => Json(json!({ "frame_id": id, "export": result })).into_response(),
        Err(e) => error(e),
    }
}

async fn commit(State(cloud): State<FrameCloud>, Path(id): Path<String>, Json(request): Json<CommitRequest>) -> Response {
    match cloud.commit(&id, request).await {
        Ok(info) => Json(json!({ "frame": info })).into_response(),
        Err(e) => error(e),
    }
}

/// `POST /3/Frames/{id}/grant`.
#[derive(Deserialize, schemars::JsonSchema)]
struct GrantRequest {
    /// read (DoGet of the frame's chunks) or write (DoPut of chunks of a new frame).
    access: eddy_common::grant::GrantAccess,
}

async fn grant(State(cloud): State<FrameCloud>, Path(id): Path<String>, Json(request): Json<GrantRequest>) -> Response {
    match cloud.grant(&id, request.access) {
        Ok(access) => Json(access).into_response(),
        Err(e) => error(e),
    }
}
