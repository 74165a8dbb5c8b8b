//! Fixtures for tests with upstream MCP servers: temporary directories, `--config` files, the
//! pinned npm servers (`tests/npm`), `mcpk-fixture`, waiting for upstreams to join the
//! catalogue, running the binary as a CLI, and a TCP proxy that records what a client sent.
//!
//! The npm servers need Node.js and `npm ci` in `tests/npm`; when either is missing the
//! helpers panic with a message saying to run `scripts/test.sh`. Nothing is skipped silently.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use crate::{REQUEST_DEADLINE, Server, binary_path};

/// How long a test waits for an upstream to appear in the catalogue (an npm server starts in
/// about 0.4 s; this is generous for a loaded machine).
pub const UPSTREAM_READY_DEADLINE: Duration = Duration::from_secs(30);

/// A directory under the system temporary directory, removed with its contents on drop. Its
/// path is canonical (symlinks resolved), as server-filesystem compares resolved paths.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory whose name starts with `mcpk-<label>-`.
    ///
    /// # Panics
    /// When the directory cannot be created.
    #[must_use]
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "mcpk-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let path = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("canonicalize {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the directory.
    #[must_use]
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` (creating parent directories) and returns its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A path as a `&str` for JSON and JavaScript.
///
/// # Panics
/// When the path is not UTF-8.
#[must_use]
pub fn utf8(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}

/// `mcpk-fixture`, next to the `mcp-kernel` binary under test.
///
/// # Panics
/// When it does not exist, with a message saying how to build it.
#[must_use]
pub fn fixture_path() -> PathBuf {
    let kernel = binary_path();
    let path = kernel.with_file_name(format!("mcpk-fixture{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "mcpk-fixture was not found at {}: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Checks once that `node` (Node.js ≥ 18) is on `PATH` and returns the command name the
/// configurations use.
///
/// # Panics
/// When Node.js is missing or too old, saying to run `scripts/test.sh`.
#[must_use]
pub fn node() -> &'static str {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let output = Command::new("node")
            .args(["-p", "process.versions.node.split('.')[0]"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `node`: {e}"))?;
        let major: u32 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| format!("`node -p` printed {:?}", output.stdout))?;
        if major < 18 {
            return Err(format!("Node.js {major} is older than 18"));
        }
        Ok(())
    });
    if let Err(problem) = checked {
        panic!(
            "these tests run the pinned npm MCP servers and need Node.js >= 18 ({problem}): run \
             scripts/test.sh, which installs Node.js and the servers (see tests/npm/README.md)"
        );
    }
    "node"
}

/// The entry script of the pinned npm server `@modelcontextprotocol/<package>`.
///
/// # Panics
/// When Node.js is missing or the package is not installed, saying to run `scripts/test.sh`.
#[must_use]
pub fn npm_server(package: &str) -> String {
    let _ = node();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("npm/node_modules/@modelcontextprotocol")
        .join(package)
        .join("dist/index.js");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh, which installs the pinned npm MCP servers \
         (npm ci --prefix tests/npm)",
        path.display()
    );
    utf8(&path).to_owned()
}

/// A `mcpServers` entry for `mcpk-fixture` with extra arguments.
#[must_use]
pub fn fixture_entry(args: &[&str]) -> Value {
    json!({"command": utf8(&fixture_path()), "args": args})
}

/// A `mcpServers` entry for server-filesystem over `dir`.
#[must_use]
pub fn filesystem_entry(dir: &Path) -> Value {
    json!({"command": node(), "args": [npm_server("server-filesystem"), utf8(dir)]})
}

/// A `mcpServers` entry for server-memory keeping its graph in `file` (absolute).
#[must_use]
pub fn memory_entry(file: &Path) -> Value {
    assert!(file.is_absolute(), "MEMORY_FILE_PATH must be absolute");
    json!({
        "command": node(),
        "args": [npm_server("server-memory")],
        "env": {"MEMORY_FILE_PATH": utf8(file)}
    })
}

/// A `mcpServers` entry for server-everything over stdio.
#[must_use]
pub fn everything_entry() -> Value {
    json!({"command": node(), "args": [npm_server("server-everything"), "stdio"]})
}

/// Writes `{"mcpServers": servers}` to `servers.json` in `dir` and returns its path.
#[must_use]
pub fn write_config(dir: &TempDir, servers: Value) -> PathBuf {
    dir.write(
        "servers.json",
        serde_json::to_vec_pretty(&json!({ "mcpServers": servers })).expect("JSON"),
    )
}

impl Server {
    /// Starts `mcp-kernel serve --config config` with extra flags and environment, then waits
    /// until every server in `ready` has tools in the catalogue.
    pub async fn start_with_upstreams(
        config: &Path,
        flags: &[&str],
        env: &[(&str, &str)],
        ready: &[&str],
    ) -> Self {
        let mut all = vec!["--config", utf8(config)];
        all.extend_from_slice(flags);
        let server = Self::start_with_env(&all, env).await;
        server.wait_for_servers(ready).await;
        server
    }

    /// Calls `search_tools` with `arguments` and expects a tool result.
    ///
    /// # Panics
    /// When the call is a JSON-RPC error.
    pub async fn search_tools(&self, arguments: Value) -> CallToolResult {
        match self.call_tool("search_tools", arguments.clone()).await {
            Ok(result) => result,
            Err(error) => panic!(
                "search_tools {arguments} was a JSON-RPC error {}: {}",
                error.code.0, error.message
            ),
        }
    }

    /// The whole catalogue as `search_tools` lists it (an empty query at the largest limit,
    /// `names` detail: one `server.tool` line per tool), as `{tools: [{server, name}]}`.
    /// Saved skills (`skills.<name>(…)` lines) and the header lines are left out.
    pub async fn catalog(&self) -> Value {
        let result = self
            .search_tools(json!({"query": "", "detail": "names", "limit": 100}))
            .await;
        let text = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<String>();
        let tools: Vec<Value> = text
            .lines()
            .filter(|line| !line.contains(' ') && !line.starts_with("skills."))
            .filter_map(|line| line.split_once('.'))
            .map(|(server, name)| json!({"server": server, "name": name}))
            .collect();
        json!({ "tools": tools })
    }

    /// Calls the fixture's `grow_echo` from `session`, then waits for the event that follows:
    /// the catalogue lists `echo` with its grown schema (a `loud` field). Polls with the
    /// result cache off.
    ///
    /// # Panics
    /// When `grow_echo` fails, or the schema has not changed within [`crate::REQUEST_DEADLINE`].
    pub async fn grow_fixture_echo(&self, session: &str) {
        let grown = self
            .execute_in(session, "await servers.fixture.grow_echo({})")
            .await;
        assert!(
            !crate::ExecuteResult::is_error(&grown),
            "grow_echo: {grown:?}"
        );
        let deadline = Instant::now() + crate::REQUEST_DEADLINE;
        loop {
            let listed = self
                .execute_with(json!({
                    "code": "JSON.stringify((await mcp.tools.list({server: 'fixture', detail: 'full'})).find(t => t.name === 'echo'))",
                    "session": session,
                    "cache": "off",
                }))
                .await;
            if crate::ExecuteResult::value(&listed)
                .as_str()
                .is_some_and(|s| s.contains("loud"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "echo's schema never changed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every server in `names` has at least one tool in the catalogue, and returns
    /// the catalogue then.
    ///
    /// # Panics
    /// When that does not happen within [`UPSTREAM_READY_DEADLINE`].
    pub async fn wait_for_servers(&self, names: &[&str]) -> Value {
        let deadline = Instant::now() + UPSTREAM_READY_DEADLINE;
        loop {
            let catalog = self.catalog().await;
            let tools = catalog["tools"].as_array().cloned().unwrap_or_default();
            let missing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|name| !tools.iter().any(|t| t["server"] == *name))
                .collect();
            if missing.is_empty() {
                return catalog;
            }
            if Instant::now() >= deadline {
                let stderr = self.stderr();
                let stale: Vec<&str> = missing
                    .iter()
                    .copied()
                    .filter(|name| stderr.contains(&format!("upstream ready server={name} ")))
                    .collect();
                let note = if stale.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({stale:?} reported ready, yet the catalogue misses them: a stale \
                         catalogue snapshot; see upstream_catalog::\
                         upstreams_ready_at_the_same_moment_all_reach_the_catalog)"
                    )
                };
                panic!(
                    "upstream servers {missing:?} did not list tools within \
                     {UPSTREAM_READY_DEADLINE:?}{note}; mcp-kernel stderr:\n{stderr}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs `mcp-kernel` with `args` and extra `env`, stdin null, and waits at most
/// [`REQUEST_DEADLINE`] for it to exit.
///
/// # Panics
/// When it cannot be started or does not exit in time (it is killed then).
#[must_use]
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_binary_with_stdin(args, env, None)
}

/// [`run_binary`] with `stdin` written to the process's standard input (then closed), or
/// stdin null for `None`.
///
/// # Panics
/// When it cannot be started or does not exit in time (it is killed then).
#[must_use]
pub fn run_binary_with_stdin(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(binary_path())
        .args(args)
        .env_remove("REDIS_URL")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcp-kernel");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = pipe.write_all(&input);
        });
    }
    // Read both pipes on threads so a full pipe cannot stall the child.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mcp-kernel") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mcp-kernel {args:?} did not exit within {REQUEST_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Calls `tool` on an MCP server started as `command args`, directly with an rmcp client (no
/// mcp-kernel in between), to compare with what the kernel hands to code.
///
/// # Panics
/// When the server cannot be started or the call fails.
pub async fn call_directly(
    command: &Path,
    args: &[&str],
    tool: &str,
    arguments: Value,
) -> CallToolResult {
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args).kill_on_drop(true);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the upstream");
    let client = tokio::time::timeout(REQUEST_DEADLINE, ().serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize");
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(arguments) = arguments {
        params = params.with_arguments(arguments);
    }
    let result = tokio::time::timeout(REQUEST_DEADLINE, client.call_tool(params))
        .await
        .expect("the direct call answered in time")
        .expect("the direct call succeeded");
    let _ = client.cancel().await;
    result
}

/// A TCP port that was free a moment ago (bound to 127.0.0.1:0 and released).
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Waits until something accepts TCP connections on `addr`.
///
/// # Panics
/// When nothing does within [`UPSTREAM_READY_DEADLINE`].
pub async fn wait_for_listener(addr: SocketAddr) {
    let deadline = Instant::now() + UPSTREAM_READY_DEADLINE;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listened on {addr} within {UPSTREAM_READY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP proxy on 127.0.0.1 that forwards every connection to `target` and records the bytes
/// clients sent (so a test can check the HTTP headers a client really sent). It runs on the
/// current tokio runtime and stops with it.
#[derive(Debug)]
pub struct RecordingProxy {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    /// Starts the proxy.
    ///
    /// # Panics
    /// When it cannot bind a port.
    pub async fn start(target: SocketAddr) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut upstream_read, mut upstream_write) = upstream.into_split();
                    let to_upstream = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    record
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .extend_from_slice(&buf[..n]);
                                    if upstream_write.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = upstream_write.shutdown().await;
                    };
                    let to_client = async {
                        let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(to_upstream, to_client);
                });
            }
        });
        Self { addr, sent }
    }

    /// Where clients connect.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything clients have sent so far, as (lossy) text.
    #[must_use]
    pub fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}
