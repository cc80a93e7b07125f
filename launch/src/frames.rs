//! Importing datasets from the driver and printing summaries, either through the driver's
//! own observer client (`local --import`) or over REST against any running cloud (`import`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use eddy_frame::meta::{JobState, JobStatus};
use eddy_frame::summary::ColumnSummary;
use eddy_frame::{FrameCloud, ImportRequest};
use serde_json::Value;

use crate::args::ImportArgs;
use crate::{DriverError, DriverResult};

fn progress_line(job: &JobState) -> String {
    let mb = job.bytes_read as f64 / 1e6;
    let secs = (job.msec as f64 / 1000.0).max(1e-3);
    format!(
        "import: {:>3.0}%  {:.1}/{:.1} MB read  {} rows  {:.0} MB/s",
        job.progress * 100.0,
        mb,
        job.bytes_total as f64 / 1e6,
        job.rows,
        mb / secs
    )
}

/// A progress bar on a terminal (bytes, rate, ETA, rows); `None` elsewhere.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let style = indicatif::ProgressStyle::with_template(
        // wide_bar takes what the terminal's width leaves, so the line never wraps.
        "import [{wide_bar}] {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    )
    .ok()?
    .progress_chars("=> ");
    // No length until the job knows its bytes: an empty bar, not a full one.
    Some(indicatif::ProgressBar::no_length().with_style(style))
}

/// Shows progress until `poll` reports the job finished: a bar on a terminal, a line every two
/// seconds otherwise (logs, pipes). Returns the final state.
async fn follow<F, Fut>(mut poll: F, timeout: Duration) -> DriverResult<JobState>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = DriverResult<JobState>>,
{
    let bar_opt = progress_bar();
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let job = poll().await?;
        if let Some(bar) = bar_opt.as_ref().filter(|_| job.bytes_total > 0) {
            bar.set_length(job.bytes_total);
            // Split ranges overlap at their edges: what is read may pass the file's size.
            bar.set_position(job.bytes_read.min(job.bytes_total));
            if job.rows > 0 {
                bar.set_message(format!("{} rows", job.rows));
            }
        }
        if job.status != JobStatus::Running {
            if let Some(bar) = &bar_opt {
                bar.finish();
                // The bar stays as drawn; what follows starts on a line of its own.
                eprintln!();
            }
            return Ok(job);
        }
        // A bar redraws itself; without one, a line now and then.
        if bar_opt.is_none() && last_print.elapsed() >= Duration::from_secs(2) {
            eprintln!("{}", progress_line(&job));
            last_print = Instant::now();
        }
        if started.elapsed() > timeout {
            return Err(DriverError::Import {
                reason: format!("the import did not finish within {timeout:?}; it keeps running in the cloud as {}", job.key),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn finished(job: JobState) -> DriverResult<String> {
    if job.parse_report.bad_rows + job.parse_report.bad_cells > 0 {
        println!(
            "Bad input: {} malformed rows, {} values stored as missing; first examples:",
            job.parse_report.bad_rows, job.parse_report.bad_cells
        );
        for e in &job.parse_report.examples {
            println!(
                "  {} byte {}{}: {}",
                e.url,
                e.offset,
                e.column.as_ref().map(|c| format!(" column {c}")).unwrap_or_default(),
                e.reason
            );
        }
    }
    match (job.status, job.dest, job.error) {
        (JobStatus::Done, Some(dest), _) => Ok(dest),
        (_, _, Some(e)) => Err(DriverError::Import { reason: e }),
        _ => Err(DriverError::Import { reason: "it ended without a frame".into() }),
    }
}

fn fmt_num(v: Option<f64>, column_type: &str) -> String {
    match v {
        None => "-".into(),
        Some(x) if column_type == "time" => format!("{:.0}", x),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.4}"),
    }
}

/// Prints a summary as a table.
pub fn print_summary(frame_id: &str, rows: u64, columns: &[ColumnSummary]) {
    println!("Frame {frame_id}: {rows} rows x {} columns", columns.len());
    println!(
        "{:<14} {:<6} {:>10} {:>8} {:>14} {:>14} {:>14} {:>12} {:>8}  top levels",
        "column", "type", "count", "missing", "min", "max", "mean", "sd", "zeros"
    );
    for c in columns {
        let top: Vec<String> = c.top_levels.iter().take(3).map(|(l, n)| format!("{l}:{n}")).collect();
        let top = match c.cardinality {
            Some(k) => format!("{k} levels; {}", top.join(" ")),
            None => String::new(),
        };
        println!(
            "{:<14} {:<6} {:>10} {:>8} {:>14} {:>14} {:>14} {:>12} {:>8}  {top}",
            c.label,
            c.column_type,
            c.count,
            c.missing,
            fmt_num(c.min, &c.column_type),
            fmt_num(c.max, &c.column_type),
            fmt_num(c.mean, "real"),
            fmt_num(c.sd, "real"),
            c.zeros
        );
    }
}

/// Imports through this process's observer client and prints the summary.
pub async fn import_here(frames: &FrameCloud, path: &str, strict: bool) -> DriverResult<()> {
    let key = frames.start_import(ImportRequest { path: path.into(), strict, ..Default::default() });
    let job = follow(
        || async { frames.job(&key).ok_or_else(|| DriverError::Import { reason: "its job vanished".into() }) },
        Duration::from_secs(3600),
    )
    .await?;
    // The job's own clock, start to frame registered: the polling above would add up to one
    // poll interval (200 ms).
    let secs = job.msec as f64 / 1000.0;
    let dest = finished(job)?;
    let info = frames.frame(&dest)?;
    println!(
        "Imported {} into {dest} in {secs:.2} s ({:.0} MB/s); {} bytes in memory ({:.2}x the source) on [{}]",
        path,
        info.source_bytes as f64 / 1e6 / secs.max(1e-6),
        info.bytes_in_memory,
        info.bytes_in_memory as f64 / (info.source_bytes.max(1)) as f64,
        info.nodes().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );
    let started = Instant::now();
    let summary = frames.summary(&dest, 0).await?;
    println!("Summary computed in {:.3} s", started.elapsed().as_secs_f64());
    print_summary(&dest, info.rows, &summary);
    Ok(())
}

async fn get_json(client: &reqwest::Client, url: &str) -> DriverResult<Value> {
    let response = client.get(url).send().await.map_err(|e| rest_error("GET", url, e))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| rest_error("GET", url, e))?;
    if !status.is_success() {
        return Err(DriverError::Rest {
            request: format!("GET {url}"),
            reason: format!("{status}: {}", body["error"].as_str().unwrap_or_default()),
        });
    }
    Ok(body)
}

fn rest_error(method: &str, url: &str, e: impl std::fmt::Display) -> DriverError {
    DriverError::Rest { request: format!("{method} {url}"), reason: e.to_string() }
}

/// What to try when the cloud cannot be reached.
fn reach_hint(base: &str, e: &reqwest::Error) -> String {
    let chain = crate::error_chain(e);
    if chain.contains("certificate") || chain.contains("UnknownIssuer") {
        "the cloud's certificate is not trusted: pass --tls-ca with the CA that signed it".into()
    } else if base.starts_with("http://") && (chain.contains("connection closed") || chain.contains("reset")) {
        "if the cloud serves HTTPS (--tls-cert), write https://".into()
    } else {
        format!("is it running (GET {base}/3/Cloud)?")
    }
}

/// `eddy-driver import`: the same through any node's REST API.
pub async fn import_over_rest(args: ImportArgs) -> DriverResult<()> {
    let base = args.cloud.trim_end_matches('/').to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &args.token {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| DriverError::InvalidArgument { reason: "--token holds characters a token cannot have".into() })?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30)).default_headers(headers);
    if let Some(ca) = &args.tls_ca {
        let pem = std::fs::read(ca).map_err(|source| DriverError::Io { what: format!("cannot read --tls-ca {}", ca.display()), source })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| DriverError::InvalidArgument {
            reason: format!("--tls-ca {} is not a PEM file of certificates: {e}", ca.display()),
        })?;
        builder = builder.tls_certs_only(certs);
    }
    let client = builder.build().map_err(|e| DriverError::InvalidArgument { reason: format!("cannot make an HTTP client: {e}") })?;
    let url = format!("{base}/3/ImportFiles");
    let response = client
        .post(&url)
        .json(&ImportRequest { path: args.path.clone(), strict: args.strict, ..Default::default() })
        .send()
        .await
        .map_err(|e| DriverError::Rest {
            request: format!("POST {url}"),
            reason: format!("cannot reach the cloud at {base}: {}; {}", crate::error_chain(&e), reach_hint(&base, &e)),
        })?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        let how = if args.token.is_some() { "the --token given is not this cloud's" } else { "pass --token (or set EDDY_TOKEN)" };
        return Err(DriverError::InvalidArgument {
            reason: format!(
                "the cloud at {base} wants its REST access token: {how}; the driver printed it and wrote it to its --notify file"
            ),
        });
    }
    let body: Value = response.json().await.map_err(|e| rest_error("POST", &url, e))?;
    let key = body["job"]["key"]
        .as_str()
        .ok_or_else(|| DriverError::Rest {
            request: format!("POST {url}"),
            reason: body["error"].as_str().unwrap_or("no job in the answer").to_string(),
        })?
        .to_string();
    let job = follow(
        || {
            let client = client.clone();
            let url = format!("{base}/3/Jobs/{key}");
            async move {
                let v = get_json(&client, &url).await?;
                serde_json::from_value::<JobState>(v["jobs"][0].clone()).map_err(|e| rest_error("GET", &url, e))
            }
        },
        args.timeout,
    )
    .await?;
    let secs = job.msec as f64 / 1000.0;
    let dest = finished(job)?;
    println!("Imported {} into {dest} in {secs:.2} s", args.path);
    let summary_url = format!("{base}/3/Frames/{dest}/summary");
    let v = get_json(&client, &summary_url).await?;
    let columns: Vec<ColumnSummary> = serde_json::from_value(v["columns"].clone()).map_err(|e| rest_error("GET", &summary_url, e))?;
    let info = get_json(&client, &format!("{base}/3/Frames/{dest}?row_count=0")).await?;
    print_summary(&dest, info["frame"]["rows"].as_u64().unwrap_or_default(), &columns);
    Ok(())
}
