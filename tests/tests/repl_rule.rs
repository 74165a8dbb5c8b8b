//! The last-expression rule against Node's REPL: every case of
//! `kernel/src/worker/shape_table.json` (completion values produced by Node 20's REPL, see
//! `shape_table.js` beside it) runs through the real binary and must give Node's value, or the
//! documented kernel value where the kernel deliberately differs.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::Value;

const TABLE: &str = include_str!("../../kernel/src/worker/shape_table.json");

fn table() -> Vec<(String, Value)> {
    let rows: Vec<Value> = serde_json::from_str(TABLE).expect("the table is JSON");
    rows.into_iter()
        .map(|row| {
            let code = row["code"].as_str().expect("code is a string").to_owned();
            let expected = row.get("kernel").unwrap_or(&row["node"]).clone();
            (code, expected)
        })
        .collect()
}

#[tokio::test]
async fn every_table_case_gives_nodes_completion_value_or_the_documented_one() {
    let server = Server::start().await;
    let table = table();
    assert!(table.len() >= 60, "the table has {} cases", table.len());
    let mut wrong = Vec::new();
    for (code, expected) in &table {
        let result = server.execute(code).await;
        if result.is_error() {
            wrong.push(format!("{code:?}: error {}", result.text()));
        } else if result.value() != expected {
            wrong.push(format!("{code:?}: got {}, Node {expected}", result.value()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn index_access_on_the_last_line_is_the_result() {
    let server = Server::start().await;
    let result = server.execute("const rows = [5, 7];\nrows[0]").await;
    assert_eq!(result.value(), &Value::from(5));
    let result = server
        .execute("const m = {a: [1, {b: 'deep'}]};\nm.a[1]['b'] // comment")
        .await;
    assert_eq!(result.value(), &Value::from("deep"));
}

/// The table is Node's word; when Node is installed, it is re-checked against Node itself.
#[test]
fn the_table_still_matches_node_when_node_is_present() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kernel/src/worker/shape_table.js"
    );
    let Ok(output) = std::process::Command::new("node")
        .arg(script)
        .arg("--check")
        .output()
    else {
        eprintln!("node is not installed; the stored table is used as is");
        return;
    };
    assert!(
        output.status.success(),
        "shape_table.js --check failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
