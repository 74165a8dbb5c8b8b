//! The binary as a command: `serve --config` refusing a bad file at start-up, and
//! `mcp-kernel run SCRIPT.js --config FILE` with its output streams and exit codes.

use mcpk_tests::upstream::{
    TempDir, fixture_entry, run_binary, run_binary_with_stdin, utf8, write_config,
};
use serde_json::json;

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Config texts and what the error must say about each.
const BAD_CONFIGS: &[(&str, &[&str])] = &[
    (
        r#"{"mcpServers": {"fs": {"command": 42}}}"#,
        &["server `fs`", "field `command`", "must be a string"],
    ),
    (
        r#"{"mcpServers": {"fs": {"command": "x", "args": ["ok", 3]}}}"#,
        &["server `fs`", "field `args[1]`", "must be a string"],
    ),
    (
        r#"{"mcpServers": {"fs": {"command": "x", "env": {"HOME": false}}}}"#,
        &["server `fs`", "field `env.HOME`", "must be a string"],
    ),
    (
        r#"{"mcpServers": {"api": {"url": "ftp://example.com/mcp"}}}"#,
        &["server `api`", "field `url`", "http"],
    ),
    (
        r#"{"mcpServers": {"api": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer ${MCPK_TEST_UNSET_VARIABLE}"}}}}"#,
        &[
            "server `api`",
            "field `headers.Authorization`",
            "environment variable `MCPK_TEST_UNSET_VARIABLE` is not set",
        ],
    ),
    (
        r#"{"mcpServers": {"both": {"command": "x", "url": "http://h/mcp"}}}"#,
        &["server `both`", "both `command` and `url`"],
    ),
    (
        r#"{"mcpServers": {"empty": {}}}"#,
        &["server `empty`", "needs `command`"],
    ),
    (r#"{"servers": {}}"#, &["field `mcpServers`", "is missing"]),
    ("{\"mcpServers\": ", &["not valid JSON"]),
];

#[test]
fn serve_refuses_a_bad_config_file_naming_the_file_the_server_and_the_field() {
    assert!(
        std::env::var_os("MCPK_TEST_UNSET_VARIABLE").is_none(),
        "MCPK_TEST_UNSET_VARIABLE must not be set for this test"
    );
    let dir = TempDir::new("bad-config");
    for (i, (text, needles)) in BAD_CONFIGS.iter().enumerate() {
        let path = dir.write(&format!("bad-{i}.json"), text);
        let path = utf8(&path);
        let output = run_binary(&["serve", "--config", path], &[]);
        let stderr = stderr_of(&output);
        assert!(
            !output.status.success(),
            "{text}: exited with {}",
            output.status
        );
        assert!(stderr.contains(&format!("{path}: ")), "{text}: {stderr}");
        for needle in *needles {
            assert!(stderr.contains(needle), "{text}: no {needle:?} in {stderr}");
        }
        // Nothing was served: no MCP message on stdout.
        assert_eq!(stdout_of(&output), "", "{text}");
    }
    let missing = dir.join("no-such-config.json");
    let output = run_binary(&["serve", "--config", utf8(&missing)], &[]);
    assert!(!output.status.success());
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!("{}: cannot read", utf8(&missing))),
        "{stderr}"
    );
}

#[test]
fn run_prints_the_result_on_stdout_and_the_logs_on_stderr() {
    let dir = TempDir::new("run-ok");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let script = dir.write(
        "report.js",
        "console.log('checking', 2);\n\
         console.warn('careful');\n\
         const s = await servers.fixture.structured({n: 2});\n\
         return {s, tools: (await mcp.tools.list({detail: 'names'})).length};\n",
    );
    let output = run_binary(&["run", utf8(&script), "--config", utf8(&config)], &[]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let stdout = stdout_of(&output);
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stdout is not one JSON value ({e}): {stdout:?}\nstderr: {stderr}")
    });
    assert_eq!(printed, json!({"s": {"n": 2, "doubled": 4}, "tools": 16}));
    assert!(stderr.contains("[log] checking 2\n"), "{stderr}");
    assert!(stderr.contains("[warn] careful\n"), "{stderr}");
    // The script read tool results: a count of tokens the model never saw.
    let read: usize = stderr
        .split("returned to the model; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tokens line: {stderr}"));
    assert!(read > 0, "{stderr}");
    assert!(!stdout.contains("checking"), "{stdout}");

    // A string result prints as its text.
    let script = dir.write("text.js", "return ['three', 'short', 'lines'].join('\\n')");
    let output = run_binary(&["run", utf8(&script), "--config", utf8(&config)], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(stdout_of(&output), "three\nshort\nlines\n");
    // What the printed result costs a model, counted in o200k_base.
    let bpe = tiktoken_rs::o200k_base().expect("o200k_base");
    let tokens = bpe.encode_ordinary("three\nshort\nlines").len();
    let stderr = stderr_of(&output);
    // ... and what the code read from upstream tools without the model seeing it: nothing here.
    assert!(
        stderr.contains(&format!(
            "tokens: {tokens} returned to the model; 0 read by the code from upstream tools"
        )),
        "{stderr}"
    );
}

#[test]
fn run_exits_1_when_the_script_throws_with_the_error_on_stderr() {
    let dir = TempDir::new("run-throws");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    for (code, expected) in [
        (
            "console.log('before'); throw new RangeError('out of range')",
            "RangeError: out of range",
        ),
        (
            "await servers.fixture.fail({message: 'upstream says no'})",
            "ToolError: fixture.fail: upstream says no",
        ),
    ] {
        let script = dir.write("throws.js", code);
        let output = run_binary(&["run", utf8(&script), "--config", utf8(&config)], &[]);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{code}: {stderr}");
        assert!(stderr.contains(expected), "{code}: {stderr}");
        assert_eq!(stdout_of(&output), "", "{code}");
        // A failure costs the model its error text, and says so like a result does.
        assert!(
            stderr.contains(" returned to the model; 0 read by the code from upstream tools"),
            "{code}: {stderr}"
        );
    }
    let script = dir.write("logs.js", "console.log('before'); throw new Error('x')");
    let output = run_binary(&["run", utf8(&script)], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("[log] before\n"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn run_exits_2_when_the_script_or_the_config_cannot_be_used() {
    let dir = TempDir::new("run-cannot");
    let missing = dir.join("missing.js");
    let output = run_binary(&["run", utf8(&missing)], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains(utf8(&missing)), "{stderr}");
    assert_eq!(stdout_of(&output), "");

    let script = dir.write("ok.js", "return 1");
    let config = dir.write("bad.json", r#"{"mcpServers": {"fs": {"args": []}}}"#);
    let output = run_binary(&["run", utf8(&script), "--config", utf8(&config)], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains(utf8(&config)), "{stderr}");
    assert!(stderr.contains("server `fs`"), "{stderr}");
    assert_eq!(stdout_of(&output), "");
}

#[test]
fn run_reads_the_script_from_stdin_given_a_dash() {
    let output = run_binary_with_stdin(
        &["run", "-"],
        &[],
        Some(b"console.log('from stdin'); return 6 * 7"),
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout_of(&output), "42\n");
    assert!(stderr.contains("[log] from stdin\n"), "{stderr}");
}

#[test]
fn run_help_lists_only_the_flags_that_apply_to_run() {
    let help = |args: &[&str]| {
        let output = run_binary(args, &[]);
        assert!(output.status.success(), "{}", stderr_of(&output));
        stdout_of(&output)
    };
    let run = help(&["run", "--help"]);
    for flag in [
        "--config",
        "--timeout-ms",
        "--upstream-connect-timeout-ms",
        "--memory-mib",
    ] {
        assert!(run.contains(flag), "run --help lacks {flag}:\n{run}");
    }
    let serve_only = [
        "--warm-workers",
        "--max-live-sessions",
        "--idle-ttl-secs",
        "--retention-ttl-secs",
        "--http",
        "--auth-file",
        "--max-mcp-sessions",
    ];
    for flag in serve_only {
        assert!(!run.contains(flag), "run --help lists {flag}:\n{run}");
    }
    // `serve` keeps them, with their environment variables.
    let serve = help(&["serve", "--help"]);
    for flag in serve_only {
        assert!(serve.contains(flag), "serve --help lacks {flag}:\n{serve}");
    }
    assert!(serve.contains("MCP_KERNEL_IDLE_TTL_SECS"), "{serve}");
    assert!(serve.contains("MCP_KERNEL_WARM_WORKERS"), "{serve}");
}

/// A server that keeps writing to stderr while it starts (as npm does while `npx` installs)
/// is not stopped at the connect timeout; a silent one is, with `SIGTERM` first, and the
/// error names the flag to raise. The writing server starts serving only once the silent one
/// has been stopped, so it has outlived the connect timeout without any clock in the test.
#[test]
fn a_server_writing_progress_outlives_the_connect_timeout_and_a_silent_one_is_stopped_gently() {
    let dir = TempDir::new("slow-start");
    let hung_pid = utf8(&dir.join("hung.pid")).to_owned();
    let terms = utf8(&dir.join("terms")).to_owned();
    let hung = format!(
        "trap 'echo $$ >> {terms}; exit 0' TERM; [ -s {hung_pid} ] || echo $$ > {hung_pid}; \
         while :; do sleep 0.05; done"
    );
    let fixture = fixture_entry(&[]);
    let fixture = fixture["command"].as_str().expect("fixture command");
    let slow = format!(
        "while [ ! -s {hung_pid} ] || kill -0 \"$(cat {hung_pid})\" 2>/dev/null; do \
         echo 'still installing' >&2; sleep 0.05; done; exec {fixture}"
    );
    let config = write_config(
        &dir,
        json!({
            "hung": {"command": "sh", "args": ["-c", hung]},
            "slow": {"command": "sh", "args": ["-c", slow]},
        }),
    );
    let script = dir.write("slow.js", "return await servers.slow.structured({n: 2})");
    let output = run_binary(
        &[
            "run",
            utf8(&script),
            "--config",
            utf8(&config),
            "--upstream-connect-timeout-ms",
            "1000",
        ],
        &[],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout_of(&output)).expect("JSON");
    assert_eq!(printed, json!({"n": 2, "doubled": 4}));
    assert!(
        stderr.contains("silent for 1s while starting")
            && stderr.contains("raise --upstream-connect-timeout-ms"),
        "{stderr}"
    );
    let first = std::fs::read_to_string(&hung_pid).expect("hung pid");
    let terms = std::fs::read_to_string(&terms).unwrap_or_default();
    assert!(
        terms.lines().any(|pid| pid == first.trim()),
        "the silent server {} got no SIGTERM (SIGTERM'd: {terms:?})\n{stderr}",
        first.trim()
    );
}

#[test]
fn a_failed_start_names_npms_real_error_rather_than_its_log_file_line() {
    let dir = TempDir::new("npm-error");
    let npm = "printf '%s\\n' 'npm error code E404' \
               'npm error 404 Not Found - GET https://registry.npmjs.org/@nope%2fserver' \
               'npm error A complete log of this run can be found in: /tmp/nope-debug-0.log' >&2; \
               exit 1";
    let config = write_config(
        &dir,
        json!({"broken": {"command": "sh", "args": ["-c", npm]}}),
    );
    let script = dir.write(
        "call.js",
        "try { await servers.broken.anything({}) } catch (e) { return e.message }",
    );
    let output = run_binary(&["run", utf8(&script), "--config", utf8(&config)], &[]);
    let stdout = stdout_of(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(
        stdout.contains(
            "its stderr says: npm error 404 Not Found - GET https://registry.npmjs.org/@nope%2fserver"
        ),
        "{stdout}"
    );
}
