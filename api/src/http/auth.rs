//! Bearer-token authentication of `serve --http`: the `--auth-file` maps the SHA-256 of each
//! token to a tenant, and gives each tenant an optional allowlist of upstream servers.
//!
//! ```json
//! {"tenants": {
//!   "team-a": {"tokens_sha256": ["<64 lowercase hex digits>"], "servers": ["fs", "memory"]},
//!   "team-b": {"tokens_sha256": ["…", "…"]}
//! }}
//! ```
//!
//! The file never holds a token, only `printf %s "$TOKEN" | sha256sum`. A request's token is
//! hashed and compared with every listed hash in constant time (`subtle`), with no early
//! exit, so the time taken says nothing about which hash, if any, came close.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::{ConditionallySelectable as _, ConstantTimeEq as _};

use super::Tenant;

/// The `realm` of every `WWW-Authenticate` challenge.
const REALM: &str = "mcp-kernel";

/// Why an `--auth-file` was refused; each message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthFileError {
    /// The file could not be read.
    #[error("cannot read the auth file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not the JSON shape documented on [`Tokens`].
    #[error("the auth file {path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tenants: HashMap<String, TenantEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    tokens_sha256: Vec<String>,
    #[serde(default)]
    servers: Option<Vec<String>>,
}

/// The tokens an `--auth-file` lists: each token's SHA-256 and its tenant.
#[derive(Debug)]
pub(crate) struct Tokens {
    hashes: Vec<[u8; 32]>,
    tenants: Vec<Tenant>,
}

/// What an `--auth-file` says: the tokens, and the tenants that have a server allowlist.
#[derive(Debug)]
pub(crate) struct AuthFile {
    pub(crate) tokens: Tokens,
    pub(crate) allowlists: HashMap<String, BTreeSet<String>>,
}

impl AuthFile {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// [`AuthFileError`] naming the file and the field: unreadable, not JSON of the shape
    /// above, a tenant name outside `^[A-Za-z0-9_.-]{1,64}$`, a hash that is not 64 lowercase
    /// hex digits, a hash listed twice, a tenant without tokens, or no tenant at all.
    pub(crate) fn load(path: &Path) -> Result<Self, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| AuthFileError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    fn parse(text: &str) -> Result<Self, String> {
        let file: File = serde_json::from_str(text).map_err(|e| {
            format!(
                "{e} (expected {{\"tenants\": {{\"<tenant>\": {{\"tokens_sha256\": [\"<hex>\"], \"servers\": [\"<server>\"]}}}}}})"
            )
        })?;
        if file.tenants.is_empty() {
            return Err("`tenants` lists no tenant, so no request could authenticate".to_owned());
        }
        let mut tenants: Vec<(String, TenantEntry)> = file.tenants.into_iter().collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tokens = Tokens {
            hashes: Vec::new(),
            tenants: Vec::new(),
        };
        let mut allowlists = HashMap::new();
        // Where each hash was listed, for the duplicate error.
        let mut fields: Vec<String> = Vec::new();
        for (name, entry) in tenants {
            let name = mcpk_session::SessionKey::check_tenant(name.clone())
                .map_err(|e| format!("tenants.{name}: {e}"))?;
            if entry.tokens_sha256.is_empty() {
                return Err(format!("tenants.{name}.tokens_sha256 is empty"));
            }
            for (i, hex) in entry.tokens_sha256.iter().enumerate() {
                let field = format!("tenants.{name}.tokens_sha256[{i}]");
                let hash = parse_hash(hex).ok_or_else(|| {
                    format!(
                        "{field} must be 64 lowercase hex digits, the SHA-256 of the token \
                         (`printf %s \"$TOKEN\" | sha256sum`), never the token itself"
                    )
                })?;
                if let Some(first) = tokens.hashes.iter().position(|h| *h == hash) {
                    return Err(format!(
                        "{field} is also {}; a token has one tenant",
                        fields[first]
                    ));
                }
                tokens.hashes.push(hash);
                fields.push(field);
                tokens.tenants.push(Tenant(name.clone()));
            }
            if let Some(servers) = entry.servers {
                allowlists.insert(name, servers.into_iter().collect());
            }
        }
        Ok(Self { tokens, allowlists })
    }
}

/// `hex` as 32 bytes, when it is exactly 64 lowercase hex digits.
fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0_u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Tokens {
    /// The tenant of `token`, comparing its SHA-256 with every listed hash in constant time.
    fn tenant_of(&self, token: &str) -> Option<&Tenant> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0_u64;
        for (i, hash) in self.hashes.iter().enumerate() {
            let matches = hash.ct_eq(&presented);
            index = u64::conditional_select(&index, &(i as u64), matches);
            found |= matches;
        }
        bool::from(found).then(|| &self.tenants[usize::try_from(index).unwrap_or(usize::MAX)])
    }
}

/// Who may call: anyone (as one tenant), or the holders of listed tokens.
#[derive(Debug)]
pub(crate) enum Auth {
    /// No `--auth-file`: every request is this tenant's.
    Open(Tenant),
    /// `--auth-file`: a request must carry `Authorization: Bearer <token>` of a listed hash.
    Tokens(Tokens),
}

/// Why a request was refused: an RFC 6750 error code (none when it carried no credentials)
/// and what to tell the client. Becomes a 401 with its challenge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal {
    error: Option<&'static str>,
    description: &'static str,
}

fn unauthorized(error: Option<&'static str>, description: &'static str) -> Refusal {
    Refusal { error, description }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        challenge_response(self.error, self.description)
    }
}

/// The 401 for a request without valid credentials, with its RFC 6750 challenge.
fn challenge_response(error: Option<&str>, description: &str) -> Response {
    let challenge = match error {
        Some(error) => {
            format!(
                "Bearer realm=\"{REALM}\", error=\"{error}\", error_description=\"{description}\""
            )
        }
        None => format!("Bearer realm=\"{REALM}\""),
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": description}).to_string(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

impl Auth {
    fn check(&self, headers: &HeaderMap) -> Result<Tenant, Refusal> {
        let tokens = match self {
            Self::Open(tenant) => return Ok(tenant.clone()),
            Self::Tokens(tokens) => tokens,
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                None,
                "this server needs `Authorization: Bearer <token>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(unauthorized(
                Some("invalid_request"),
                "the Authorization header must be `Bearer <token>`",
            ));
        };
        tokens.tenant_of(token).cloned().ok_or_else(|| {
            unauthorized(
                Some("invalid_token"),
                "the bearer token is not one this server accepts",
            )
        })
    }
}

/// The axum middleware: a request that authenticates goes on with its [`Tenant`] in its
/// extensions (rmcp hands them to the server as `http::request::Parts`); any other gets 401.
pub(crate) async fn authenticate(
    State(auth): State<std::sync::Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth.check(request.headers()) {
        Ok(tenant) => {
            request.extensions_mut().insert(tenant);
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(token: &str) -> String {
        Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn tokens_map_to_their_tenants_and_others_to_none() {
        let file = AuthFile::parse(&format!(
            r#"{{"tenants": {{"a": {{"tokens_sha256": ["{}", "{}"], "servers": ["fs"]}},
                "b": {{"tokens_sha256": ["{}"]}}}}}}"#,
            sha("alpha-1"),
            sha("alpha-2"),
            sha("beta")
        ))
        .unwrap();
        let tenant = |t: &str| file.tokens.tenant_of(t).map(|t| t.0.clone());
        assert_eq!(tenant("alpha-1").as_deref(), Some("a"));
        assert_eq!(tenant("alpha-2").as_deref(), Some("a"));
        assert_eq!(tenant("beta").as_deref(), Some("b"));
        assert_eq!(tenant("gamma"), None);
        assert_eq!(tenant(""), None);
        assert_eq!(file.allowlists["a"], BTreeSet::from(["fs".to_owned()]));
        assert!(!file.allowlists.contains_key("b"));
    }

    #[test]
    fn bad_files_name_the_field() {
        let hash = sha("x");
        for (text, needle) in [
            ("{}", "missing field `tenants`"),
            (r#"{"tenants": {}}"#, "lists no tenant"),
            (
                r#"{"tenants": {"a": {"tokens_sha256": []}}}"#,
                "tenants.a.tokens_sha256 is empty",
            ),
            (
                r#"{"tenants": {"a": {"tokens_sha256": ["my-secret-token"]}}}"#,
                "tenants.a.tokens_sha256[0] must be 64 lowercase hex digits",
            ),
            (
                &format!(
                    r#"{{"tenants": {{"a": {{"tokens_sha256": ["{}"]}}}}}}"#,
                    hash.to_uppercase()
                ),
                "tenants.a.tokens_sha256[0] must be 64 lowercase hex digits",
            ),
            (
                &format!(r#"{{"tenants": {{"a b": {{"tokens_sha256": ["{hash}"]}}}}}}"#),
                "tenants.a b:",
            ),
            (
                &format!(
                    r#"{{"tenants": {{"a": {{"tokens_sha256": ["{hash}"]}}, "b": {{"tokens_sha256": ["{hash}"]}}}}}}"#
                ),
                "tenants.b.tokens_sha256[0] is also tenants.a.tokens_sha256[0]",
            ),
            (
                &format!(
                    r#"{{"tenants": {{"a": {{"tokens_sha256": ["{hash}"], "token": "x"}}}}}}"#
                ),
                "unknown field `token`",
            ),
        ] {
            let error = AuthFile::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn requests_without_a_valid_bearer_token_get_401_with_a_challenge() {
        let file = AuthFile::parse(&format!(
            r#"{{"tenants": {{"a": {{"tokens_sha256": ["{}"]}}}}}}"#,
            sha("good")
        ))
        .unwrap();
        let auth = Auth::Tokens(file.tokens);
        let headers = |value: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            headers
        };
        assert_eq!(auth.check(&headers(Some("Bearer good"))).unwrap().0, "a");
        assert_eq!(auth.check(&headers(Some("bearer good"))).unwrap().0, "a");
        for (value, error) in [
            (None, None),
            (Some("Bearer bad"), Some("invalid_token")),
            (Some("Basic Z29vZA=="), Some("invalid_request")),
            (Some("Bearer "), Some("invalid_request")),
        ] {
            let response = auth.check(&headers(value)).unwrap_err().into_response();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            let challenge = response.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                challenge.starts_with("Bearer realm=\"mcp-kernel\""),
                "{challenge}"
            );
            match error {
                Some(error) => assert!(
                    challenge.contains(&format!("error=\"{error}\"")),
                    "{challenge}"
                ),
                None => assert!(!challenge.contains("error="), "{challenge}"),
            }
        }
    }
}
