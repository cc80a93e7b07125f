//! The web console: one page and its script, embedded in the binary (no CDN: it works in
//! air-gapped clusters). It reads the same public REST API as every other client. `GET /`
//! answers the page to browsers (they ask for `text/html`) and the text index to everyone
//! else, so `curl http://node:54321/` keeps printing the endpoints.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");
/// uPlot (MIT, see `ui/vendor/uplot/LICENSE`), fetched by `scripts/vendor-ui.sh`.
const UPLOT_JS: &str = include_str!("../ui/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../ui/vendor/uplot/uPlot.min.css");

/// Whether the client prefers a page to plain text (browsers send `Accept: text/html,...`).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"))
}

/// The console's page.
pub fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML, false)
}

/// The assets under `/ui/`.
pub fn router() -> Router {
    Router::new()
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS, false) }))
        .route("/ui/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS, false) }))
        .route("/ui/vendor/uPlot.iife.min.js", get(|| async { asset("text/javascript; charset=utf-8", UPLOT_JS, true) }))
        .route("/ui/vendor/uPlot.min.css", get(|| async { asset("text/css; charset=utf-8", UPLOT_CSS, true) }))
}

fn asset(content_type: &'static str, body: &'static str, immutable: bool) -> Response {
    // Our own files change with the binary: revalidate. The vendored library's path names
    // no version, but it only changes with a new binary too; an hour is harmless.
    let cache = if immutable { "public, max-age=3600" } else { "no-cache" };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // The page loads only its own script and styles, and talks only to its own node.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// What a browser gets without credentials: a form that asks for the access token and
/// comes back as `/?token=...` (which sets the cookie).
pub fn login_page(basic_too: bool) -> Response {
    let also = if basic_too { "<p>Or reload and give a user and password of the cloud's htpasswd file.</p>" } else { "" };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Eddy: sign in</title></head>\
         <body style=\"font:15px system-ui,sans-serif;max-width:560px;margin:60px auto;color:#1f2933\">\
         <h1 style=\"font-size:22px\">This Eddy cloud needs its access token</h1>\
         <p>The driver printed the cloud's URL with <code>?token=</code>; open that URL, or paste the token here. \
         With the cloud's secret file, <code>eddy-driver token --secret-file FILE</code> prints it.</p>{also}\
         <form method=\"get\" action=\"\"><input name=\"token\" type=\"password\" autocomplete=\"off\" \
         style=\"width:100%;padding:6px;font:inherit\" placeholder=\"access token\" autofocus> \
         <p><button type=\"submit\" style=\"font:inherit;padding:5px 14px\">Open the console</button></p></form></body></html>"
    );
    let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_embedded_assets() {
        for src in ["\"ui/app.js", "\"ui/app.css", "\"ui/vendor/uPlot.iife.min.js", "\"ui/vendor/uPlot.min.css"] {
            assert!(INDEX_HTML.contains(src), "{src}");
        }
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"), "no outside address");
        assert!(!APP_JS.contains("innerHTML"), "server text goes in as text, never as HTML");
    }

    #[test]
    fn browsers_get_the_page_and_tools_the_text() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"));
        assert!(wants_html(&h));
    }
}
