//! The sealed supervisor: what a confined worker is refused (through the test-only
//! `mcp-kernel sandbox-probe`, which confines itself exactly as a worker does), the minimal
//! environment of stdio upstreams, line-bounded reading of their stderr, and child processes
//! that never outlive the supervisor.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mcpk_tests::upstream::{TempDir, fixture_entry, utf8, write_config};
use mcpk_tests::{ExecuteResult as _, REQUEST_DEADLINE, Server, binary_path};
use serde_json::{Value, json};

/// Runs `sh -c script` with `$0` = the mcp-kernel binary, waiting at most
/// [`REQUEST_DEADLINE`].
fn sh(script: &str) -> Output {
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(binary_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    wait_output(child)
}

fn wait_output(child: std::process::Child) -> Output {
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let deadline = Instant::now() + REQUEST_DEADLINE;
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "pid {pid} did not exit in time");
        std::thread::sleep(Duration::from_millis(10));
    }
    waiter.join().expect("waiter").expect("wait")
}

/// `mcp-kernel sandbox-probe <args>`, run directly.
fn probe(args: &[&str]) -> Output {
    let child = Command::new(binary_path())
        .arg("sandbox-probe")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the probe");
    wait_output(child)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_killed_by_seccomp(output: &Output, what: &str) {
    assert_eq!(
        output.status.signal(),
        Some(libc_sigsys()),
        "{what}: expected death by SIGSYS, got {:?}; stdout: {}; stderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stderr).contains("attempting"),
        "{what}: the probe died before its attempt: {}",
        text(&output.stderr)
    );
}

/// SIGSYS on Linux (x86_64 and aarch64).
fn libc_sigsys() -> i32 {
    31
}

#[test]
fn the_control_attempt_succeeds_under_the_same_confinement() {
    let output = probe(&["control"]);
    assert!(
        output.status.success(),
        "{:?}; stderr: {}",
        output.status,
        text(&output.stderr)
    );
    let stdout = text(&output.stdout);
    let allowlist: Vec<&str> = stdout
        .trim()
        .strip_prefix("control: succeeded under an allowlist of ")
        .unwrap_or_else(|| panic!("{stdout}"))
        .split(' ')
        .collect();
    for needed in ["read", "write", "mmap", "futex", "exit_group"] {
        assert!(
            allowlist.contains(&needed),
            "{needed} missing from {allowlist:?}"
        );
    }
    for refused in ["socket", "kill", "prlimit64", "execve", "openat", "clone3"] {
        assert!(
            !allowlist.contains(&refused),
            "{refused} is allowed: {allowlist:?}"
        );
    }
}

#[test]
fn socket_execve_and_open_kill_the_worker() {
    let dir = TempDir::new("seal-open");
    let file = dir.write("readable.txt", "a readable file");
    assert!(
        std::fs::read(&file).is_ok(),
        "the control: the file is readable"
    );
    for args in [&["socket"][..], &["execve"][..], &["open", utf8(&file)][..]] {
        let output = probe(args);
        assert_killed_by_seccomp(&output, args[0]);
    }
}

#[test]
fn a_worker_cannot_signal_its_supervisor() {
    // `sh` stands in for the supervisor: SIGTERM would end it before the echo.
    let output = sh(r#""$0" sandbox-probe kill-parent; echo "probe status $?""#);
    assert!(
        output.status.success(),
        "the parent was hit: {:?}",
        output.status
    );
    // 128 + SIGSYS.
    assert_eq!(
        text(&output.stdout).trim(),
        "probe status 159",
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_worker_cannot_change_its_supervisors_limits() {
    let output = sh(
        r#"echo "before $(ulimit -n)"; "$0" sandbox-probe prlimit-parent; echo "probe status $?"; echo "after $(ulimit -n)""#,
    );
    assert!(output.status.success(), "{:?}", output.status);
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[1], "probe status 159", "{}", text(&output.stderr));
    let before = lines[0].strip_prefix("before ").expect("before");
    let after = lines[2].strip_prefix("after ").expect("after");
    assert_eq!(before, after, "the parent's RLIMIT_NOFILE changed");
    assert_ne!(after, "17");
}

#[tokio::test]
async fn builtins_that_would_read_files_answer_without_them() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    // Local time is UTC (the tz database is a file), and `import()` is refused as a
    // TypeError: neither kills the worker.
    let result = server
        .execute(
            "let imported; try { await import('./x.js'); imported = 'yes' } catch (e) { imported = e.name } \
             return [new Date(0).getTimezoneOffset(), new Date(2020, 1, 1).getTime(), \
                     new Date(0).toString().slice(0, 33), imported]",
        )
        .await;
    assert_eq!(
        result.value(),
        &json!([
            0,
            1_580_515_200_000_u64,
            "Thu Jan 01 1970 00:00:00 GMT+0000",
            "TypeError"
        ]),
        "{}",
        result.text()
    );
    let workers = server.workers();
    let again = server.execute("new Date(86400000).getHours()").await;
    assert_eq!(again.value(), &json!(0));
    assert_eq!(server.workers(), workers, "the worker was replaced");
}

/// The upstream's environment, as the fixture's `env` tool reports it.
async fn upstream_env(server: &Server) -> serde_json::Map<String, Value> {
    let result = server.execute("await servers.fixture.env()").await;
    match result.value() {
        Value::Object(env) => env.clone(),
        other => panic!("env is not an object: {other}"),
    }
}

#[tokio::test]
async fn stdio_upstreams_get_only_the_minimal_environment_and_their_configured_env() {
    let secret = format!("mcpk-supervisor-only-{}", std::process::id());
    let dir = TempDir::new("seal-env");
    let mut fixture = fixture_entry(&[]);
    fixture["env"] = json!({"MCPK_CONFIGURED": "configured-value"});
    let config = write_config(&dir, json!({ "fixture": fixture }));
    let server = Server::start_with_upstreams(
        &config,
        &[],
        &[("MCPK_SUPERVISOR_SECRET", &secret)],
        &["fixture"],
    )
    .await;
    let supervisor_env = std::fs::read(format!("/proc/{}/environ", server.pid())).expect("environ");
    assert!(
        text(&supervisor_env).contains(&secret),
        "the control: the supervisor's environment holds the secret"
    );

    let env = upstream_env(&server).await;
    assert_eq!(env.get("MCPK_CONFIGURED"), Some(&json!("configured-value")));
    assert!(!env.contains_key("MCPK_SUPERVISOR_SECRET"), "{env:?}");
    assert!(
        !env.values()
            .any(|v| v.as_str().is_some_and(|v| v.contains(&secret))),
        "{env:?}"
    );
    let allowed = [
        "HOME",
        "LOGNAME",
        "PATH",
        "SHELL",
        "TERM",
        "USER",
        "MCPK_CONFIGURED",
    ];
    for key in env.keys() {
        assert!(allowed.contains(&key.as_str()), "unexpected variable {key}");
    }
    if let Some(path) = std::env::var_os("PATH") {
        assert_eq!(env.get("PATH"), Some(&json!(path.to_string_lossy())));
    }
}

/// A `/proc/<pid>/status` field in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// How much the supervisor's peak resident memory may grow while an upstream writes a 300 MB
/// stderr line: far below the line (it is read in bounded pieces and dropped), with room for
/// the allocator and the runtime.
const STDERR_FLOOD_RSS_GROWTH_BOUND_MIB: u64 = 48;

#[tokio::test]
async fn a_300_mb_stderr_line_does_not_grow_the_supervisor() {
    const FLOOD_BYTES: u64 = 300_000_000;
    let dir = TempDir::new("seal-stderr");
    let config = write_config(&dir, json!({ "fixture": fixture_entry(&[]) }));
    let server = Server::start_with_upstreams(&config, &[], &[], &["fixture"]).await;
    // Warm up the paths the flood uses (an upstream call through a worker).
    let warm = server
        .execute("await servers.fixture.echo({value: 1})")
        .await;
    assert!(!warm.is_error(), "{}", warm.text());
    let before_kib = status_kb(server.pid(), "VmHWM:");

    let result = server
        .execute_with(json!({
            "code": format!("await servers.fixture.stderr_flood({{bytes: {FLOOD_BYTES}}})"),
            "timeout_ms": 60_000
        }))
        .await;
    // The tool returns only once its last byte is in the pipe: the supervisor read it all.
    assert_eq!(
        result.value(),
        &json!({"written": FLOOD_BYTES}),
        "{}",
        result.text()
    );
    let after_kib = status_kb(server.pid(), "VmHWM:");
    let growth_mib = after_kib.saturating_sub(before_kib) / 1024;
    eprintln!("supervisor peak RSS (VmHWM) {before_kib} kB before, {after_kib} kB after the flood");
    assert!(
        growth_mib < STDERR_FLOOD_RSS_GROWTH_BOUND_MIB,
        "the supervisor's peak RSS grew by {growth_mib} MiB ({before_kib} kB -> {after_kib} kB) \
         during a {FLOOD_BYTES}-byte stderr line"
    );

    // Still serving, the upstream too.
    server.ping().await;
    let echoed = server
        .execute("await servers.fixture.echo({value: 'after'})")
        .await;
    assert_eq!(echoed.value(), &json!({"value": "after"}));
}

/// Children of `pid` (workers and upstream servers), from /proc.
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            found.push((child, text(&cmdline).replace('\0', " ")));
        }
    }
    found
}

/// The process state letter of `pid` (`R`, `S`, `Z`...), or `None` once it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
}

/// Polls until `done(pid)` holds for every pid (a hang guard, not a measurement).
async fn wait_until(pids: &[u32], what: &str, done: impl Fn(u32) -> bool) {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    loop {
        let left: Vec<(u32, Option<char>)> = pids
            .iter()
            .copied()
            .filter(|&pid| !done(pid))
            .map(|pid| (pid, state(pid)))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still there: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `mcp-kernel serve` started by hand (not through [`Server`]), so the test owns its stdin
/// and its exit status.
struct Supervisor {
    child: tokio::process::Child,
    client: rmcp::service::RunningService<rmcp::RoleClient, ()>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Supervisor {
    async fn start(flags: &[&str]) -> Self {
        use rmcp::ServiceExt as _;
        let mut child = tokio::process::Command::new(binary_path())
            .arg("serve")
            .args(flags)
            // The embedded default, as `mcpk_tests::Server` runs it: REDIS_URL is for the
            // tests that pass --redis-url with a key prefix of their own.
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mcp-kernel serve");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt as _;
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        let io = (
            child.stdout.take().expect("stdout"),
            child.stdin.take().expect("stdin"),
        );
        let client = tokio::time::timeout(REQUEST_DEADLINE, ().serve(io))
            .await
            .expect("initialised in time")
            .expect("MCP initialisation");
        Self {
            child,
            client,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    async fn execute_with(&self, arguments: serde_json::Value) -> rmcp::model::CallToolResult {
        let params = rmcp::model::CallToolRequestParams::new("execute")
            .with_arguments(arguments.as_object().cloned().unwrap_or_default());
        tokio::time::timeout(REQUEST_DEADLINE, self.client.call_tool(params))
            .await
            .expect("execute answered in time")
            .expect("execute")
    }
}

/// A server with one warm worker, one session's worker and a fixture upstream that ignores
/// the end of its input (`--linger`), so only the supervisor can stop it; and those children.
async fn server_with_children(dir: &TempDir) -> (Supervisor, Vec<(u32, String)>) {
    let config = write_config(dir, json!({ "fixture": fixture_entry(&["--linger"]) }));
    let server = Supervisor::start(&["--config", utf8(&config), "--warm-workers", "1"]).await;
    // The call waits for the upstream to start. It must run (cache off): the other tests
    // that make this call share the Redis tier (REDIS_URL), and a cache hit takes no worker.
    let result = server
        .execute_with(json!({"code": "await servers.fixture.echo({value: 1})", "cache": "off"}))
        .await;
    assert!(!result.is_error(), "{}", result.text());
    let deadline = Instant::now() + REQUEST_DEADLINE;
    loop {
        let children = children_of(server.pid());
        let workers = children
            .iter()
            .filter(|(_, c)| c.ends_with("worker "))
            .count();
        let upstreams = children
            .iter()
            .filter(|(_, c)| c.contains("mcpk-fixture"))
            .count();
        if workers >= 2 && upstreams == 1 {
            return (server, children);
        }
        assert!(Instant::now() < deadline, "children: {children:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn closing_stdin_stops_and_reaps_every_child_before_the_server_exits() {
    let dir = TempDir::new("seal-stdin");
    let (server, children) = server_with_children(&dir).await;
    let pid = server.pid();
    let Supervisor {
        mut child,
        client,
        stderr,
    } = server;
    let stderr = move || stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Ends the client's transport: the server's stdin reaches end of file.
    let _ = client.cancel().await;
    let status = tokio::time::timeout(REQUEST_DEADLINE, child.wait())
        .await
        .expect("the server exited after its stdin closed")
        .expect("wait");
    assert!(status.success(), "{status:?}; stderr:\n{}", stderr());
    // Reaped before the server exited: not running, and not left as zombies (nothing here
    // reaps orphans, so an unreaped child would stay a zombie).
    for (child, cmdline) in &children {
        assert_eq!(
            state(*child),
            None,
            "{child} ({cmdline}) outlived server {pid}; stderr:\n{}",
            stderr()
        );
    }
}

#[tokio::test]
async fn killing_the_supervisor_kills_its_workers_and_upstreams() {
    let dir = TempDir::new("seal-kill");
    let (mut server, children) = server_with_children(&dir).await;
    server.child.start_kill().expect("SIGKILL the server");
    let _ = server.child.wait().await;
    let pids: Vec<u32> = children.iter().map(|(pid, _)| *pid).collect();
    // Dead: gone, or a zombie waiting for a reaper (the supervisor can no longer reap).
    wait_until(&pids, "children of the killed supervisor", |pid| {
        matches!(state(pid), None | Some('Z'))
    })
    .await;
}
