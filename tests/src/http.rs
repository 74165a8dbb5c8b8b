//! `mcp-kernel serve --http`: start the real binary on a free loopback port, connect real MCP
//! clients (rmcp's streamable HTTP client) with bearer tokens, and send raw HTTP requests.

use std::io::BufRead as _;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientConfig, ProgressNotificationParam,
    RequestMetaObject,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt as _};
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::mpsc;

use crate::REQUEST_DEADLINE;
use crate::upstream::TempDir;

/// Installs rustls's `ring` provider for this test process's HTTP clients (reqwest is built
/// without a provider of its own); a no-op after the first call.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The lowercase hex SHA-256 of `token`, as an auth file lists it.
#[must_use]
pub fn token_sha256(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes an auth file to `dir`: each `(tenant, token, servers)` becomes a tenant with that
/// token's hash and, when `servers` is given, that allowlist.
#[must_use]
pub fn write_auth_file(
    dir: &TempDir,
    tenants: &[(&str, &str, Option<&[&str]>)],
) -> std::path::PathBuf {
    let mut map = serde_json::Map::new();
    for (tenant, token, servers) in tenants {
        let mut entry = json!({"tokens_sha256": [token_sha256(token)]});
        if let Some(servers) = servers {
            entry["servers"] = json!(servers);
        }
        map.insert((*tenant).to_owned(), entry);
    }
    dir.write(
        "auth.json",
        serde_json::to_vec_pretty(&json!({"tenants": map})).expect("JSON"),
    )
}

/// A running `mcp-kernel serve --http 127.0.0.1:0` with its stderr captured.
pub struct HttpServer {
    child: tokio::process::Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("mcp-kernel --http stderr:\n{}", self.stderr());
        }
    }
}

impl HttpServer {
    /// Starts the server with extra `serve` flags and waits for its `listening on` log line.
    ///
    /// # Panics
    /// When the server exits first or never says where it listens.
    pub async fn start(flags: &[&str]) -> Self {
        install_tls_provider();
        let mut command = tokio::process::Command::new(crate::binary_path());
        command
            .args(["serve", "--http", "127.0.0.1:0"])
            .args(flags)
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn mcp-kernel serve --http");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (found, mut listening) = mpsc::unbounded_channel();
        let pipe = child.stderr.take().expect("stderr");
        let pipe = std::fs::File::from(pipe.into_owned_fd().expect("stderr fd"));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = found.send(url);
                }
                let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        let url = match tokio::time::timeout(REQUEST_DEADLINE, listening.recv()).await {
            Ok(Some(url)) => url,
            _ => panic!(
                "mcp-kernel --http did not say where it listens:\n{}",
                stderr.lock().unwrap_or_else(|e| e.into_inner())
            ),
        };
        Self { child, url, stderr }
    }

    /// `http://127.0.0.1:<port>/mcp`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the server wrote to stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The server's pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends the server SIGTERM.
    ///
    /// # Panics
    /// When `kill` fails.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits for the server to exit.
    ///
    /// # Panics
    /// When it has not exited within [`REQUEST_DEADLINE`].
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(REQUEST_DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit:\n{}", self.stderr()))
            .expect("wait")
    }

    /// `GET <base>/<path>` (e.g. `healthz`): status and body.
    ///
    /// # Panics
    /// When the request fails.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let base = self.url.trim_end_matches("/mcp");
        let response = reqwest::get(format!("{base}/{path}")).await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// An MCP session opened with raw HTTP requests (`initialize`, then
    /// `notifications/initialized`), as `token`'s tenant, for tests that look at status codes
    /// and at the bytes on the wire.
    ///
    /// # Panics
    /// When either request fails.
    pub async fn raw_session(&self, token: Option<&str>) -> RawSession {
        install_tls_provider();
        let mut raw = RawSession {
            http: reqwest::Client::new(),
            url: self.url.clone(),
            id: None,
        };
        let init = raw
            .post(
                token,
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"}}}),
            )
            .await;
        assert_eq!(init.status(), 200, "initialize");
        let id = init.headers()["mcp-session-id"]
            .to_str()
            .expect("ASCII")
            .to_owned();
        let _ = init.text().await;
        raw.id = Some(id);
        let initialized = raw
            .post(
                token,
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert!(
            initialized.status().is_success(),
            "{}",
            initialized.status()
        );
        raw
    }

    /// An initialised MCP client, with `Authorization: Bearer <token>` when given.
    ///
    /// # Panics
    /// When the handshake fails.
    pub async fn client(&self, token: Option<&str>) -> HttpClient {
        HttpClient::connect(&self.url, token)
            .await
            .unwrap_or_else(|error| panic!("MCP over HTTP: {error}\n{}", self.stderr()))
    }
}

/// An MCP session driven with raw HTTP requests (see [`HttpServer::raw_session`]).
#[derive(Debug)]
pub struct RawSession {
    http: reqwest::Client,
    url: String,
    /// The `Mcp-Session-Id` (set once `initialize` answered).
    pub id: Option<String>,
}

impl RawSession {
    /// A request on this session (`Accept`, `MCP-Protocol-Version`, `Mcp-Session-Id`) with
    /// `Authorization: Bearer <token>` when given.
    pub fn request(&self, method: reqwest::Method, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, &self.url)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-06-18");
        if let Some(id) = &self.id {
            request = request.header("Mcp-Session-Id", id);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// POSTs the JSON-RPC message `body`.
    ///
    /// # Panics
    /// When the request fails.
    pub async fn post(&self, token: Option<&str>, body: Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, token)
            .json(&body)
            .send()
            .await
            .expect("HTTP POST")
    }
}

/// A client handler that forwards every progress notification to a channel.
#[derive(Debug, Clone)]
pub struct Recorder {
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl Recorder {
    /// A recorder and the receiving end of its notifications.
    #[must_use]
    pub fn new() -> (Self, mpsc::UnboundedReceiver<ProgressNotificationParam>) {
        let (progress, received) = mpsc::unbounded_channel();
        (Self { progress }, received)
    }
}

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.progress.send(params);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

/// An MCP client over streamable HTTP that records progress notifications.
pub struct HttpClient {
    /// The rmcp client.
    pub service: RunningService<RoleClient, Recorder>,
    /// Progress notifications received, in order.
    pub progress: mpsc::UnboundedReceiver<ProgressNotificationParam>,
}

impl HttpClient {
    /// Connects and initialises.
    ///
    /// # Errors
    /// The handshake failed (e.g. 401).
    pub async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<Self> {
        install_tls_provider();
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
        if let Some(token) = token {
            config = config.auth_header(token.to_owned());
        }
        let transport = StreamableHttpClientTransport::from_config(config);
        let (recorder, progress) = Recorder::new();
        let service = tokio::time::timeout(REQUEST_DEADLINE, recorder.serve(transport)).await??;
        Ok(Self { service, progress })
    }

    /// Calls `tool` with `arguments`, with a progress token when `progress_token` is set.
    ///
    /// # Errors
    /// A JSON-RPC error or a transport failure.
    pub async fn call(
        &self,
        tool: &str,
        arguments: Value,
        progress_token: Option<&str>,
    ) -> Result<CallToolResult, rmcp::ServiceError> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Value::Object(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        if let Some(token) = progress_token {
            params.meta = Some(RequestMetaObject::with_progress_token(
                rmcp::model::ProgressToken(rmcp::model::NumberOrString::String(token.into())),
            ));
        }
        tokio::time::timeout(REQUEST_DEADLINE, self.service.peer().call_tool(params))
            .await
            .unwrap_or_else(|_| panic!("no answer within {REQUEST_DEADLINE:?}"))
    }

    /// Runs `execute` with `arguments` (`{code, session?, …}`).
    ///
    /// # Panics
    /// On a JSON-RPC error.
    pub async fn execute_with(&self, arguments: Value) -> CallToolResult {
        self.call("execute", arguments, None)
            .await
            .expect("execute answered")
    }

    /// Runs `execute` with `code` in the connection's default session.
    ///
    /// # Panics
    /// On a JSON-RPC error.
    pub async fn execute(&self, code: &str) -> CallToolResult {
        self.execute_with(json!({ "code": code })).await
    }
}
