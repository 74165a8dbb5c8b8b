//! Start-up configuration through the real binary: limits whose relation cannot work are
//! refused before anything starts, naming both limits; unknown keys in an upstream entry are a
//! warning naming the closest known key, not an error.

use mcpk_tests::upstream::{TempDir, fixture_path, run_binary, utf8, write_config};
use serde_json::json;

#[test]
fn a_state_limit_that_cannot_fit_in_a_protocol_frame_is_refused_at_start_up() {
    let output = run_binary(&["serve", "--max-state-bytes", "41943040"], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for needle in [
        "max-state-bytes (41943040)",
        "MAX_FRAME_BYTES (67108864 bytes)",
        "max-result-bytes (32768)",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in: {stderr}");
    }
    // The same limits through `run` are refused the same way, before any worker starts.
    let dir = TempDir::new("frame-limit");
    let script = dir.write("s.js", "return 1");
    let output = run_binary(
        &["run", utf8(&script), "--max-state-bytes", "41943040"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("MAX_FRAME_BYTES"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_largest_state_limit_that_fits_is_accepted() {
    // 2 × (state + 32768 result bytes) + 1024 ≤ 64 MiB.
    let largest = ((64usize << 20) - 1024) / 2 - 32768;
    let dir = TempDir::new("frame-limit-ok");
    let script = dir.write("s.js", "mcp.state.n = 1; return 'ok'");
    let largest = largest.to_string();
    let output = run_binary(&["run", utf8(&script), "--max-state-bytes", &largest], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let one_more = (largest.parse::<usize>().unwrap() + 1).to_string();
    let output = run_binary(&["run", utf8(&script), "--max-state-bytes", &one_more], &[]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn an_unknown_upstream_key_is_a_warning_naming_the_closest_known_key() {
    let dir = TempDir::new("unknown-key");
    let config = write_config(
        &dir,
        json!({"fx": {"command": utf8(&fixture_path()), "comand": "typo", "autoApprove": []}}),
    );
    let script = dir.write("s.js", "return 1");
    let output = run_binary(&["run", utf8(&script), "--config", utf8(&config)], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "not an error: {stderr}");
    assert!(
        stderr.contains("server `fx`: unknown key `comand` is ignored; did you mean `command`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown key `autoApprove` is ignored (known keys: command,"),
        "{stderr}"
    );
}
