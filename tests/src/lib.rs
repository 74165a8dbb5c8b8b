//! Shared fixtures for the integration tests and benchmarks: start the real `mcp-kernel`
//! binary with `serve`, talk to it with a real rmcp client over stdio, and read the results.
//!
//! The binary is not built by `cargo test` for this crate (it belongs to `mcpk-api`); run
//! `cargo build --bins` first, or point `MCP_KERNEL_BIN` at a binary.
//!
//! The server's stderr is captured. When a test panics while a [`Server`] is alive, the
//! captured stderr is printed (into the test's captured output), so failures are debuggable.

pub mod http;
pub mod stats;
pub mod upstream;

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ClientRequest, PingRequest};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{ErrorData, RoleClient, ServiceError, ServiceExt as _};
use serde_json::{Value, json};

/// How long any one request may take before the fixture gives up and fails the test (the
/// longest call the tests make has a 3 s timeout; a worker may have to start first).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(60);

/// CPU ticks (normally 10 ms each) a worker must use before it counts as spinning.
pub const SPIN_TICKS: u64 = 20;

/// User + system CPU ticks process `pid` has used, from `/proc/<pid>/stat`.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // After the command: state (field 3), ... utime (14), stime (15).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// How much of the server's stderr is kept (the most recent bytes).
const STDERR_KEEP_BYTES: usize = 256 * 1024;

/// The `mcp-kernel` binary under test: `$MCP_KERNEL_BIN`, else `mcp-kernel` in the target
/// directory of the running test or bench executable (`target/<profile>/deps/<exe>`).
///
/// # Panics
/// When the binary does not exist, with a message saying how to build it.
#[must_use]
pub fn binary_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MCP_KERNEL_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "MCP_KERNEL_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the path of the running test executable");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps/");
    let path = profile_dir.join(format!("mcp-kernel{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the mcp-kernel binary was not found at {}: run `cargo build --bins` first (the \
         integration tests drive the real binary), or set MCP_KERNEL_BIN",
        path.display()
    );
    path
}

/// Appends the server's stderr lines to `sink`, keeping the most recent bytes.
fn capture_stderr(pipe: std::fs::File, sink: &Mutex<String>) {
    for line in std::io::BufReader::new(pipe).split(b'\n') {
        let Ok(line) = line else { break };
        let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
        sink.push_str(&String::from_utf8_lossy(&line));
        sink.push('\n');
        if sink.len() > STDERR_KEEP_BYTES {
            let mut cut = sink.len() - STDERR_KEEP_BYTES / 2;
            while !sink.is_char_boundary(cut) {
                cut += 1;
            }
            sink.replace_range(..cut, "[...]\n");
        }
    }
}

/// A running `mcp-kernel serve` child process with an initialised MCP client connection.
pub struct Server {
    client: RunningService<RoleClient, ()>,
    pid: u32,
    stderr: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("pid", &self.pid).finish()
    }
}

impl Server {
    /// Starts the server with its default limits.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the server with extra `serve` flags, e.g. `&["--max-log-bytes", "512"]`.
    ///
    /// # Panics
    /// When the binary is missing, cannot be started, or the MCP handshake fails.
    pub async fn start_with(flags: &[&str]) -> Self {
        Self::start_with_env(flags, &[]).await
    }

    /// Starts the server with extra `serve` flags and extra environment variables (which
    /// `${VAR}` in a `--config` file expands from).
    ///
    /// # Panics
    /// When the binary is missing, cannot be started, or the MCP handshake fails.
    pub async fn start_with_env(flags: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = tokio::process::Command::new(binary_path());
        // The embedded default (memory store) unless a test passes --redis-url itself, with a
        // unique --redis-key-prefix: the REDIS_URL scripts/test.sh exports is for those tests.
        command
            .arg("serve")
            .args(flags)
            .env_remove("REDIS_URL")
            .envs(env.iter().copied())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        let (transport, stderr_pipe) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mcp-kernel serve");
        let pid = transport.id().expect("the server's pid");
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = stderr_pipe {
            // A plain thread, not a task: it keeps reading while the test's runtime is busy
            // or blocked, so the capture is current when a test fails.
            let pipe = std::fs::File::from(pipe.into_owned_fd().expect("the server's stderr"));
            let sink = stderr.clone();
            std::thread::spawn(move || capture_stderr(pipe, &sink));
        }
        let client = match tokio::time::timeout(REQUEST_DEADLINE, ().serve(transport)).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => panic!(
                "MCP initialisation failed: {error}\nserver stderr:\n{}",
                stderr.lock().unwrap_or_else(|e| e.into_inner())
            ),
            Err(_) => panic!("MCP initialisation did not finish in {REQUEST_DEADLINE:?}"),
        };
        Self {
            client,
            pid,
            stderr,
        }
    }

    /// The server process's id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Process ids of the server's live worker processes (its children running
    /// `mcp-kernel worker`), in ascending order.
    #[must_use]
    pub fn workers(&self) -> Vec<u32> {
        worker_children(self.pid)
    }

    /// Waits until the server has at least `n` live workers (the warm pool filling up).
    ///
    /// # Panics
    /// When that does not happen within [`REQUEST_DEADLINE`].
    pub async fn wait_for_workers(&self, n: usize) -> Vec<u32> {
        let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
        loop {
            let workers = self.workers();
            if workers.len() >= n {
                return workers;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} workers started",
                workers.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// CPU time (user + system, in clock ticks) each live worker has used so far, by pid.
    #[must_use]
    pub fn worker_cpu_ticks(&self) -> std::collections::HashMap<u32, u64> {
        self.workers()
            .into_iter()
            .filter_map(|pid| Some((pid, cpu_ticks(pid)?)))
            .collect()
    }

    /// Waits for the event "a call is spinning in a worker": one of the workers in `before`
    /// (from [`Self::worker_cpu_ticks`]) has used [`SPIN_TICKS`] more CPU ticks since. Idle
    /// workers use none, so this is the call running, observed rather than assumed after a
    /// sleep. Returns that worker's pid.
    ///
    /// # Panics
    /// When no worker does within [`REQUEST_DEADLINE`] (a hang guard, not a timing assertion).
    pub async fn wait_for_spinning_worker(
        &self,
        before: &std::collections::HashMap<u32, u64>,
    ) -> u32 {
        let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
        loop {
            let spinning = before.iter().find(|(pid, ticks)| {
                cpu_ticks(**pid).is_some_and(|now| now >= *ticks + SPIN_TICKS)
            });
            if let Some((pid, _)) = spinning {
                return *pid;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no worker of {before:?} started spinning"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until worker `pid` is gone (exited, or a zombie not yet reaped).
    ///
    /// # Panics
    /// When it is still alive after `guard` (a hang guard: the caller sets it far beyond any
    /// legitimate wait).
    pub async fn wait_for_worker_exit(&self, pid: u32, guard: Duration) {
        let deadline = tokio::time::Instant::now() + guard;
        while self.workers().contains(&pid) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker {pid} is still alive after {guard:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The MCP client connection, for requests the helpers do not cover.
    #[must_use]
    pub fn client(&self) -> &RunningService<RoleClient, ()> {
        &self.client
    }

    /// Closes the connection as a client that is done would (stdin closed), and waits until
    /// the server process has exited and been reaped.
    ///
    /// # Panics
    /// When the server has not exited within rmcp's grace and had to be killed.
    pub async fn stop(&mut self) {
        let closed = self
            .client
            .close_with_timeout(REQUEST_DEADLINE)
            .await
            .expect("the client task");
        assert!(closed.is_some(), "the server did not exit in time");
        assert!(
            !std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
            "the server process is still there"
        );
    }

    /// What the server has written to stderr so far (the most recent 256 KiB at most).
    #[must_use]
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls tool `name` with raw `arguments`, returning the result or the JSON-RPC error.
    ///
    /// # Panics
    /// When the request does not complete within [`REQUEST_DEADLINE`], or the transport fails.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Value,
    ) -> Result<CallToolResult, ErrorData> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        match arguments {
            Value::Object(arguments) => params = params.with_arguments(arguments),
            Value::Null => {}
            other => panic!("tool arguments must be an object or null, got {other}"),
        }
        let call = self.client.call_tool(params);
        match tokio::time::timeout(REQUEST_DEADLINE, call).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(ServiceError::McpError(error))) => Err(error),
            Ok(Err(error)) => panic!("tools/call {name} failed at the transport: {error}"),
            Err(_) => panic!("tools/call {name} did not answer within {REQUEST_DEADLINE:?}"),
        }
    }

    /// Calls `execute` with raw `arguments` (anything, to test validation).
    ///
    /// # Panics
    /// When the server answers with a JSON-RPC error instead of a tool result.
    pub async fn execute_with(&self, arguments: Value) -> CallToolResult {
        match self.call_tool("execute", arguments.clone()).await {
            Ok(result) => result,
            Err(error) => panic!(
                "execute {arguments} was a JSON-RPC error {}: {}",
                error.code.0, error.message
            ),
        }
    }

    /// Runs `code` in the default session.
    pub async fn execute(&self, code: &str) -> CallToolResult {
        self.execute_with(json!({ "code": code })).await
    }

    /// Runs `code` in session `session`.
    pub async fn execute_in(&self, session: &str, code: &str) -> CallToolResult {
        self.execute_with(json!({ "code": code, "session": session }))
            .await
    }

    /// Calls `execute` with `arguments` and expects a JSON-RPC error, which it returns.
    ///
    /// # Panics
    /// When the call returns a tool result instead.
    pub async fn execute_rejected(&self, arguments: Value) -> ErrorData {
        match self.call_tool("execute", arguments.clone()).await {
            Ok(result) => panic!("execute {arguments} was accepted: {result:?}"),
            Err(error) => error,
        }
    }

    /// Sends one MCP `ping` and waits for its answer.
    ///
    /// # Panics
    /// When the ping fails or does not answer within [`REQUEST_DEADLINE`].
    pub async fn ping(&self) {
        let ping = self
            .client
            .send_request(ClientRequest::PingRequest(PingRequest::default()));
        match tokio::time::timeout(REQUEST_DEADLINE, ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("ping failed: {error}"),
            Err(_) => panic!("ping did not answer within {REQUEST_DEADLINE:?}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // eprintln! on the test thread is captured by libtest and shown with the failure.
            eprintln!(
                "---- mcp-kernel (pid {}) stderr ----\n{}",
                self.pid,
                self.stderr()
            );
        }
    }
}

/// Process ids of the live (not zombie) `mcp-kernel worker` children of process `parent`,
/// in ascending order, from `/proc`.
#[must_use]
pub fn worker_children(parent: u32) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the parenthesised command: state, ppid, ...
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent)
                && fields.first() != Some(&"Z")
                && cmdline.ends_with(b"worker\0")
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The text of the first content of a `resources/read` result.
///
/// # Panics
/// When it is not a text resource.
#[must_use]
pub fn resource_text(result: &rmcp::model::ReadResourceResult) -> String {
    match result.contents.first() {
        Some(rmcp::model::ResourceContents::TextResourceContents { text, .. }) => text.clone(),
        other => panic!("not a text resource: {other:?}"),
    }
}

/// The Redis the tests use: `$REDIS_URL` (scripts/test.sh exports it, starting a
/// `redis-server` when none answers), else `redis://127.0.0.1:6379`.
#[must_use]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// The workspace's root directory (the parent of `tests/`).
#[must_use]
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// The Python of the venv `tests/clients/install-python-sdk.sh` builds (`MCPK_PY`, else
/// `<target>/mcpk-py/bin/python` next to this test's profile directory), with the official
/// `mcp` SDK and `kubernetes-validate`.
///
/// # Panics
/// When there is no such venv.
#[must_use]
pub fn venv_python() -> PathBuf {
    let python = std::env::var_os("MCPK_PY").map_or_else(
        || {
            let exe = std::env::current_exe().expect("the test executable");
            let target = exe
                .ancestors()
                .nth(3)
                .expect("the test executable lives in target/<profile>/deps/");
            target.join("mcpk-py/bin/python")
        },
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "no venv Python at {}: run scripts/test.sh, or tests/clients/install-python-sdk.sh",
        python.display()
    );
    python
}

/// A Redis key prefix no other test (or test run) uses: `test:<pid>:<n>:`.
#[must_use]
pub fn unique_prefix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("test:{}:{nanos}:{n}:", std::process::id())
}

impl Server {
    /// Starts a server whose snapshots, skills and leases live in the test Redis under
    /// `prefix`, with extra `serve` flags.
    pub async fn start_redis(prefix: &str, flags: &[&str]) -> Self {
        let url = redis_url();
        let mut all = vec!["--redis-url", url.as_str(), "--redis-key-prefix", prefix];
        all.extend_from_slice(flags);
        Self::start_with(&all).await
    }
}

/// Starts a server and writes `requests` (JSON-RPC requests with distinct numeric ids) to it
/// in one write, right after the MCP handshake, without waiting for any answer. Returns the
/// responses by id. This bypasses the rmcp client, which may reorder concurrent requests, so
/// the tests can control the order in which requests arrive.
///
/// # Panics
/// When the server cannot be started or does not answer every request within
/// [`REQUEST_DEADLINE`].
pub async fn pipelined(requests: &[Value]) -> std::collections::HashMap<u64, Value> {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

    let mut child = tokio::process::Command::new(binary_path())
        .arg("serve")
        .env_remove("REDIS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mcp-kernel serve");
    let mut input = String::new();
    let handshake = [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "mcpk-tests", "version": "0"}
        }}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ];
    for message in handshake.iter().chain(requests) {
        input.push_str(&message.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("write requests");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut responses = std::collections::HashMap::new();
    let read_all = async {
        while responses.len() < requests.len() + 1 {
            let line = lines.next_line().await.expect("read a response");
            let line = line.expect("the server closed stdout early");
            let response: Value = serde_json::from_str(&line).expect("a JSON response");
            let id = response["id"].as_u64().expect("a numeric id");
            responses.insert(id, response);
        }
    };
    tokio::time::timeout(REQUEST_DEADLINE, read_all)
        .await
        .expect("every pipelined request was answered");
    drop(stdin);
    responses.remove(&0).expect("the initialize response");
    responses
}

/// Reading a `tools/call` result of `execute`.
pub trait ExecuteResult {
    /// The text of the single text content block.
    fn text(&self) -> &str;
    /// What a client shows the model: the text, then `structuredContent` as compact JSON
    /// (nothing when there is none). Token counts are taken over this.
    fn seen_by_model(&self) -> String;
    /// `structuredContent`.
    fn structured(&self) -> &Value;
    /// Whether `isError` is true.
    fn is_error(&self) -> bool;
    /// `structuredContent.result` of a successful call.
    fn value(&self) -> &Value;
    /// `structuredContent.error` of a failed call: `{name, message, stack}`.
    fn error(&self) -> &Value;
    /// `structuredContent.error.name` of a failed call.
    fn error_name(&self) -> &str;
    /// `structuredContent.error.message` of a failed call.
    fn error_message(&self) -> &str;
    /// `structuredContent.logs` as `(level, message)` pairs.
    fn logs(&self) -> Vec<(String, String)>;
    /// Asserts that the error message contains every one of `needles`.
    ///
    /// # Panics
    /// Naming the first missing needle and the whole message.
    #[track_caller]
    fn assert_message_contains(&self, needles: &[&str]) {
        let message = self.error_message();
        for needle in needles {
            assert!(message.contains(needle), "missing {needle:?} in: {message}");
        }
    }
}

impl ExecuteResult for CallToolResult {
    fn seen_by_model(&self) -> String {
        let structured = self
            .structured_content
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        format!("{}{structured}", self.text())
    }

    fn text(&self) -> &str {
        assert_eq!(
            self.content.len(),
            1,
            "expected one content block: {self:?}"
        );
        &self.content[0]
            .as_text()
            .unwrap_or_else(|| panic!("expected a text block: {self:?}"))
            .text
    }

    fn structured(&self) -> &Value {
        self.structured_content
            .as_ref()
            .unwrap_or_else(|| panic!("no structuredContent: {self:?}"))
    }

    fn is_error(&self) -> bool {
        self.is_error == Some(true)
    }

    fn value(&self) -> &Value {
        assert!(
            !self.is_error(),
            "expected success, got an error: {}",
            self.text()
        );
        &self.structured()["result"]
    }

    fn error(&self) -> &Value {
        assert!(
            self.is_error(),
            "expected an error, got success: {}",
            self.text()
        );
        &self.structured()["error"]
    }

    fn error_name(&self) -> &str {
        self.error()["name"]
            .as_str()
            .unwrap_or_else(|| panic!("error.name is not a string: {self:?}"))
    }

    fn error_message(&self) -> &str {
        self.error()["message"]
            .as_str()
            .unwrap_or_else(|| panic!("error.message is not a string: {self:?}"))
    }

    fn logs(&self) -> Vec<(String, String)> {
        self.structured()["logs"]
            .as_array()
            .unwrap_or_else(|| panic!("logs is not an array: {self:?}"))
            .iter()
            .map(|entry| {
                (
                    entry["level"].as_str().unwrap_or_default().to_owned(),
                    entry["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

/// Sends `SIGKILL` to `pid` with `kill -9`, and panics if that fails.
pub fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid}");
}

/// Resident set size of `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`; Linux only).
///
/// # Errors
/// The process is gone or its status has no `VmRSS` line.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}
