//! Who may use a node's REST API.
//!
//! By default every request must carry the cloud's access token
//! ([`ClusterSecret::rest_token`]): `Authorization: Bearer TOKEN`, the `eddy_token` cookie, or
//! `?token=TOKEN` in the URL (the form the driver prints, as Jupyter does). `GET /?token=TOKEN`
//! sets the cookie and redirects to `/`, so a browser opened on the printed URL keeps working
//! without the token in its address bar. With an htpasswd file (bcrypt entries, as
//! `htpasswd -B` writes them) HTTP basic authentication is accepted as well. A few paths that
//! reveal nothing and that orchestrators poll stay open: [`OPEN_PATHS`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eddy_common::auth::ClusterSecret;

use crate::{NodeError, NodeResult};

/// Paths served without authentication: the Kubernetes readiness probe and the health check.
pub const OPEN_PATHS: &[&str] = &["/kubernetes/isLeaderNode", "/3/Health"];

/// The cookie that carries the token for browsers.
pub const TOKEN_COOKIE: &str = "eddy_token";

/// How a node authenticates REST requests.
#[derive(Clone, Debug, Default)]
pub enum RestAuthMode {
    /// The cloud's access token (the default).
    #[default]
    Token,
    /// The token, or a user and password from an htpasswd file (bcrypt entries), read once.
    Basic(Arc<Htpasswd>),
    /// No authentication: anyone who reaches the port may stop the cloud and read its data.
    None,
}

impl RestAuthMode {
    /// Parses `--rest-auth token|basic|none` with the `--htpasswd` file basic needs (read here,
    /// so that a bad file stops the node at start).
    pub fn parse(mode: &str, htpasswd_opt: Option<&Path>) -> NodeResult<Self> {
        let mode = match (mode, htpasswd_opt) {
            ("token", None) => Self::Token,
            ("basic", Some(path)) => Self::Basic(Arc::new(Htpasswd::read(path)?)),
            ("none", None) => Self::None,
            ("basic", None) => {
                return Err(NodeError::InvalidArgument {
                    what: "--rest-auth",
                    reason: "basic needs --htpasswd FILE (users and bcrypt hashes, e.g. made with `htpasswd -B -c FILE USER`)".into(),
                })
            }
            ("token" | "none", Some(_)) => {
                return Err(NodeError::InvalidArgument {
                    what: "--htpasswd",
                    reason: format!("it is used only with --rest-auth basic, not with --rest-auth {mode}"),
                })
            }
            (other, _) => {
                return Err(NodeError::InvalidArgument {
                    what: "--rest-auth",
                    reason: format!("{other:?} is not one of token (the default), basic, none"),
                })
            }
        };
        Ok(mode)
    }

    /// The cloud's REST access token, unless authentication is off.
    pub fn token(&self, secret: &ClusterSecret, cloud_name: &str) -> Option<String> {
        match self {
            Self::None => None,
            Self::Token | Self::Basic(_) => Some(secret.rest_token(cloud_name)),
        }
    }

    /// The word for it on a command line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Basic(_) => "basic",
            Self::None => "none",
        }
    }
}

/// Users and their bcrypt hashes, from an Apache htpasswd file.
#[derive(Clone, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("Htpasswd").field("users", &users).finish_non_exhaustive()
    }
}

impl Htpasswd {
    /// Reads `path`. Only bcrypt entries (`$2y$`, `$2a$`, `$2b$`) are accepted: the older
    /// htpasswd formats (MD5 `$apr1$`, `{SHA}`, crypt) are weak, and refused with the command
    /// that makes a bcrypt entry.
    pub fn read(path: &Path) -> NodeResult<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NodeError::InvalidArgument { what: "--htpasswd", reason: format!("cannot read {}: {e}", path.display()) })?;
        Self::parse(&text)
            .map_err(|reason| NodeError::InvalidArgument { what: "--htpasswd", reason: format!("{}: {reason}", path.display()) })
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or_else(|| format!("line {number} is not USER:HASH"))?;
            if !["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) {
                return Err(format!("line {number} (user {user:?}) is not a bcrypt hash; make one with `htpasswd -B FILE {user}`"));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err("it lists no users; add one with `htpasswd -B FILE USER`".into());
        }
        Ok(Self { users })
    }

    /// Whether `password` is `user`'s. An unknown user costs a bcrypt verification too, so
    /// that the time taken does not tell which user names exist.
    pub fn check(&self, user: &str, password: &str) -> bool {
        // A hash of a random, forgotten password, at `htpasswd -B`'s default cost (5).
        const DUMMY: &str = "$2b$05$35Dv1mR4O2YuDVTd7dwf5uGr68LAeiwoNjMtkffJceL4fZWj1TW9u";
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, DUMMY);
                false
            }
        }
    }
}

/// What the authentication layer checks requests against.
#[derive(Clone)]
pub struct RestAuth {
    secret: ClusterSecret,
    cloud_name: String,
    htpasswd_opt: Option<Arc<Htpasswd>>,
    /// Mark the cookie `Secure` (the REST API is HTTPS): a browser never sends it over plain HTTP.
    secure_cookie: bool,
}

impl RestAuth {
    /// The checker for `mode`, or `None` for [`RestAuthMode::None`].
    pub fn new(mode: &RestAuthMode, secret: &ClusterSecret, cloud_name: &str) -> Option<Self> {
        let htpasswd_opt = match mode {
            RestAuthMode::None => return None,
            RestAuthMode::Token => None,
            RestAuthMode::Basic(htpasswd) => Some(htpasswd.clone()),
        };
        Some(Self { secret: secret.clone(), cloud_name: cloud_name.to_string(), htpasswd_opt, secure_cookie: false })
    }

    /// The same, for a REST API served over HTTPS (`true`): the token cookie becomes `Secure`.
    pub fn over_https(self, https: bool) -> Self {
        Self { secure_cookie: https, ..self }
    }

    fn token_ok(&self, token: &str) -> bool {
        self.secret.verify_rest_token(&self.cloud_name, token)
    }

    /// Whether the request's headers or query carry valid credentials. Basic credentials are
    /// checked with bcrypt, which is slow on purpose: off the async threads that also carry
    /// the heartbeats.
    async fn allows(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        if self.allows_token(headers, query) {
            return true;
        }
        let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|a| strip_scheme(a, "Basic"));
        let (Some(htpasswd), Some(encoded)) = (self.htpasswd_opt.clone(), basic.map(str::to_string)) else { return false };
        tokio::task::spawn_blocking(move || check_basic(&htpasswd, &encoded)).await.unwrap_or(false)
    }

    /// Whether a token (query, cookie or Bearer header) is the cloud's.
    fn allows_token(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        if let Some(token) = query.and_then(query_token) {
            if self.token_ok(&token) {
                return true;
            }
        }
        if let Some(token) = cookie(headers, TOKEN_COOKIE) {
            if self.token_ok(token) {
                return true;
            }
        }
        let Some(authorization) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        strip_scheme(authorization, "Bearer").is_some_and(|token| self.token_ok(token))
    }
}

/// `Authorization: Basic` credentials against the htpasswd users.
fn check_basic(htpasswd: &Htpasswd, encoded: &str) -> bool {
    use base64::Engine as _;
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let Ok(text) = String::from_utf8(decoded) else { return false };
    text.split_once(':').is_some_and(|(user, password)| htpasswd.check(user, password))
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest.trim())
}

fn query_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| pair.strip_prefix("token=")).map(|t| t.to_string())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// The axum middleware: open paths pass, authenticated requests pass, `GET /?token=` also
/// sets the cookie, everything else gets 401 with what to send.
pub async fn require(State(auth): State<RestAuth>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if OPEN_PATHS.contains(&path) {
        return next.run(request).await;
    }
    let query = request.uri().query().map(str::to_string);
    if !auth.allows(request.headers(), query.as_deref()).await {
        let browser = path == "/" && crate::ui::wants_html(request.headers());
        return unauthorized(&auth, browser);
    }
    // Only a token that is the cloud's becomes the cookie (it is hex: nothing to escape).
    let token_in_query = query.as_deref().and_then(query_token).filter(|t| auth.token_ok(t));
    if let (Some(token), "/") = (token_in_query, path) {
        // The browser's first visit: keep the token in a cookie, not in the address bar.
        let secure = if auth.secure_cookie { "; Secure" } else { "" };
        let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
        // Relative, so that a proxy serving the node under a path of its own keeps it.
        let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "./")]).into_response();
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    next.run(request).await
}

/// 401 with what to send; a browser opening the console gets a page that asks for the token.
fn unauthorized(auth: &RestAuth, browser: bool) -> Response {
    let how = if auth.htpasswd_opt.is_some() {
        "send the cloud's access token (Authorization: Bearer TOKEN, or ?token=TOKEN) or a user and password of the --htpasswd file (HTTP basic)"
    } else {
        "send the cloud's access token: Authorization: Bearer TOKEN, or ?token=TOKEN in the URL. \
         The driver prints it in the cloud's URL and writes it to the --notify file; \
         with the secret file, `eddy-driver token --secret-file FILE` prints it"
    };
    let mut response = if browser {
        crate::ui::login_page(auth.htpasswd_opt.is_some())
    } else {
        let body = serde_json::json!({ "http_status": 401, "msg": format!("authentication required: {how}") });
        (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    };
    let challenge = if auth.htpasswd_opt.is_some() { "Basic realm=\"eddy\", Bearer realm=\"eddy\"" } else { "Bearer realm=\"eddy\"" };
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_accepts_bcrypt_and_refuses_weak_hashes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let h = Htpasswd::parse(&format!("# team\nalice:{hash}\n")).unwrap();
        assert!(h.check("alice", "s3cret"));
        assert!(!h.check("alice", "wrong"));
        assert!(!h.check("bob", "s3cret"));
        let err = Htpasswd::parse("bob:$apr1$abc$def\n").unwrap_err();
        assert!(err.contains("htpasswd -B") && err.contains("bob"), "{err}");
        assert!(Htpasswd::parse("\n").unwrap_err().contains("no users"));
        assert!(Htpasswd::parse("nocolon\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn modes_need_the_right_flags() {
        assert!(matches!(RestAuthMode::parse("token", None).unwrap(), RestAuthMode::Token));
        assert!(RestAuthMode::parse("basic", None).unwrap_err().to_string().contains("--htpasswd"));
        assert!(RestAuthMode::parse("token", Some(Path::new("f"))).unwrap_err().to_string().contains("only with --rest-auth basic"));
        assert!(RestAuthMode::parse("open", None).unwrap_err().to_string().contains("token (the default), basic, none"));
    }

    #[tokio::test]
    async fn credentials_are_read_from_header_cookie_and_query() {
        let secret = ClusterSecret::from_text("0123456789abcdef").unwrap();
        let auth = RestAuth::new(&RestAuthMode::Token, &secret, "c").unwrap();
        let token = secret.rest_token("c");
        let mut headers = HeaderMap::new();
        assert!(!auth.allows(&headers, None).await);
        assert!(auth.allows(&headers, Some(&format!("a=1&token={token}"))).await);
        assert!(!auth.allows(&headers, Some("token=00")).await);
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("x=1; eddy_token={token}")).unwrap());
        assert!(auth.allows(&headers, None).await);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("bearer {token}")).unwrap());
        assert!(auth.allows(&headers, None).await);
        // Another cloud's token is not this one's.
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", secret.rest_token("d"))).unwrap());
        assert!(!auth.allows(&headers, None).await);
    }
}
