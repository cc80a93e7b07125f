//! REST routes that document themselves: every route is registered together with its
//! methods and one line on what it does, so the index (`GET /`) and the OpenAPI document
//! (`GET /openapi.json`) are generated from the routes the node serves and cannot drift.

use axum::routing::MethodRouter;
use axum::Router;
use serde::Serialize;

/// One method of one route, as the index lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Endpoint {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path, with `{name}` for path parameters.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// JSON Schema of the JSON body it takes, if it takes one.
    #[serde(skip)]
    pub body: Option<serde_json::Value>,
    /// Query parameters: name, JSON type, what it is.
    #[serde(skip)]
    pub query: Vec<(&'static str, &'static str, &'static str)>,
}

/// A router and the documentation of its routes, built by the same calls.
#[derive(Default)]
pub struct Routes {
    router: Router,
    endpoints: Vec<Endpoint>,
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `handler` at `path`; `methods` names each method it answers and what it does.
    pub fn route(mut self, path: &'static str, handler: MethodRouter, methods: &[(&'static str, &'static str)]) -> Self {
        self.router = self.router.route(path, handler);
        self.endpoints.extend(methods.iter().map(|&(method, summary)| Endpoint { method, path, summary, body: None, query: Vec::new() }));
        self
    }

    /// Documents the JSON body that `method path` takes (a JSON Schema with nothing to resolve).
    pub fn body(mut self, method: &str, path: &str, schema: serde_json::Value) -> Self {
        if let Some(e) = self.endpoints.iter_mut().find(|e| e.method == method && e.path == path) {
            e.body = Some(schema);
        }
        self
    }

    /// Documents the query parameters of `method path`: name, JSON type, what it is.
    pub fn query(mut self, method: &str, path: &str, params: &[(&'static str, &'static str, &'static str)]) -> Self {
        if let Some(e) = self.endpoints.iter_mut().find(|e| e.method == method && e.path == path) {
            e.query.extend_from_slice(params);
        }
        self
    }

    /// These routes and `other`'s.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.endpoints.extend(other.endpoints);
        self
    }

    /// The documented endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The router, with `GET /` (the web console for browsers, the index as text for
    /// everyone else), the console's assets and `GET /openapi.json` added.
    pub fn into_router(self) -> Router {
        let mut endpoints = self.endpoints;
        let plain = |path, summary| Endpoint { method: "GET", path, summary, body: None, query: Vec::new() };
        endpoints.push(plain("/", "the web console (browsers) or this index (text)"));
        endpoints.push(plain("/openapi.json", "the endpoints as an OpenAPI 3.1 document"));
        let index = index_text(&endpoints);
        let openapi = openapi(&endpoints);
        self.router
            .route(
                "/",
                axum::routing::get(move |headers: axum::http::HeaderMap| {
                    let index = index.clone();
                    async move {
                        if crate::ui::wants_html(&headers) {
                            crate::ui::page()
                        } else {
                            axum::response::IntoResponse::into_response(index)
                        }
                    }
                }),
            )
            .merge(crate::ui::router())
            .route("/openapi.json", axum::routing::get(move || async move { axum::Json(openapi) }))
    }
}

fn index_text(endpoints: &[Endpoint]) -> String {
    let mut out = format!("Eddy node {}. Endpoints:\n", eddy_common::VERSION);
    for e in endpoints {
        out.push_str(&format!("  {:<7}{:<32}{}\n", e.method, e.path, e.summary));
    }
    out.push_str("The same as OpenAPI: GET /openapi.json\n");
    out
}

fn openapi(endpoints: &[Endpoint]) -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for e in endpoints {
        let entry = paths.entry(e.path.to_string()).or_insert_with(|| serde_json::json!({}));
        let mut parameters: Vec<serde_json::Value> = e
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| serde_json::json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        parameters.extend(e.query.iter().map(|(name, kind, what)| {
            let schema =
                if *kind == "integer" { serde_json::json!({ "type": kind, "minimum": 0 }) } else { serde_json::json!({ "type": kind }) };
            serde_json::json!({ "name": name, "in": "query", "required": false, "description": what, "schema": schema })
        }));
        let mut operation = serde_json::json!({
            "summary": e.summary,
            "parameters": parameters,
            "responses": {
                "200": { "description": "success (JSON, or text where the summary says so)" },
                "4XX": { "description": "refused: the JSON body's `error` (or `msg`) says why" },
            },
        });
        if let Some(schema) = &e.body {
            operation["requestBody"] = serde_json::json!({ "required": true, "content": { "application/json": { "schema": schema } } });
        }
        entry[e.method.to_lowercase()] = operation;
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "Eddy node REST API", "version": eddy_common::VERSION },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_and_openapi_list_every_route_and_method() {
        let routes = Routes::new().route("/a", axum::routing::get(|| async { "a" }), &[("GET", "read a")]).merge(Routes::new().route(
            "/b/{id}",
            axum::routing::get(|| async { "b" }).delete(|| async { "" }),
            &[("GET", "read b"), ("DELETE", "drop b")],
        ));
        let routes = routes.body("DELETE", "/b/{id}", serde_json::json!({ "type": "object", "required": ["why"] })).query(
            "GET",
            "/a",
            &[("n", "integer", "how many")],
        );
        let mut all = routes.endpoints().to_vec();
        all.push(Endpoint { method: "GET", path: "/", summary: "this index", body: None, query: Vec::new() });
        let text = index_text(&all);
        assert!(text.contains("GET    /a") && text.contains("DELETE /b/{id}") && text.contains("drop b"), "{text}");
        let doc = openapi(&all);
        assert_eq!(doc["paths"]["/b/{id}"]["delete"]["summary"], "drop b");
        assert_eq!(doc["paths"]["/b/{id}"]["get"]["parameters"][0]["name"], "id");
        let body = &doc["paths"]["/b/{id}"]["delete"]["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["required"][0], "why");
        assert!(doc["paths"]["/b/{id}"]["get"].get("requestBody").is_none());
        let n = &doc["paths"]["/a"]["get"]["parameters"][0];
        assert_eq!((n["name"].as_str(), n["in"].as_str(), n["schema"]["type"].as_str()), (Some("n"), Some("query"), Some("integer")));
    }
}
