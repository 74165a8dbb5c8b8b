//! The binary as a command: `serve --config` refusing a bad file at start-up, and
//! `mcp-kernel run SCRIPT.js --config FILE` with its output streams and exit codes.

use mcpk_tests::upstream::{TempDir, fixture_entry, run_binary, utf8, write_config};
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
