//! The main job, end to end: one `execute` call reads a large log through server-filesystem,
//! keeps its ERROR lines, stores them in server-memory, reads them back, and returns a
//! three-line answer. The file's bulk never leaves the kernel.

use mcpk_tests::upstream::{TempDir, filesystem_entry, memory_entry, utf8, write_config};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};

const LINES: usize = 5_000;

/// Line `i` (1-based) of the log: every 500th line, from line 137, is an ERROR.
fn log_line(i: usize) -> String {
    if i % 500 == 137 {
        format!(
            "2025-03-01T10:{:02}:{:02}Z ERROR payment {i:05} declined by the gateway (code E{i})",
            i / 60 % 60,
            i % 60
        )
    } else {
        format!(
            "2025-03-01T10:{:02}:{:02}Z INFO  request {i:05} served in {} ms, status 200 OK",
            i / 60 % 60,
            i % 60,
            i % 97
        )
    }
}

#[tokio::test]
async fn one_execute_reads_a_large_file_filters_it_stores_errors_in_memory_and_answers_briefly() {
    let dir = TempDir::new("job");
    let text: String = (1..=LINES).map(|i| log_line(i) + "\n").collect();
    let log = dir.write("logs/app.log", &text);
    let file_bytes = std::fs::metadata(&log).expect("stat").len();
    assert!(file_bytes > 100 * 1024, "the log is {file_bytes} bytes");
    let expected_errors: Vec<String> = (1..=LINES)
        .map(log_line)
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert_eq!(expected_errors.len(), 10);

    let memory_file = dir.join("memory/graph.jsonl");
    std::fs::create_dir_all(memory_file.parent().unwrap()).expect("mkdir memory");
    let config = write_config(
        &dir,
        json!({
            "fs": filesystem_entry(&dir.join("logs")),
            "memory": memory_entry(&memory_file),
        }),
    );
    let server = Server::start_with_upstreams(&config, &[], &[], &["fs", "memory"]).await;

    let code = format!(
        r"const {{ content }} = await servers.fs.read_text_file({{ path: {path} }});
const lines = content.split('\n').filter(l => l !== '');
const errors = lines.filter(l => l.includes('ERROR'));
await servers.memory.create_entities({{ entities: [
  {{ name: 'app.log errors', entityType: 'log-summary', observations: errors }},
] }});
const found = await servers.memory.search_nodes({{ query: 'log-summary' }});
const opened = await servers.memory.open_nodes({{ names: ['app.log errors'] }});
const stored = opened.entities[0].observations;
return [
  `scanned ${{lines.length}} lines (${{content.length}} chars)`,
  `stored ${{stored.length}} ERROR lines in ${{found.entities.map(e => e.name).join(', ')}}`,
  `first: ${{stored[0]}}`,
].join('\n');",
        path = json!(utf8(&log))
    );
    let result = server
        .execute_with(json!({"code": code, "timeout_ms": 30000}))
        .await;
    let answer = result
        .value()
        .as_str()
        .unwrap_or_else(|| panic!("{}", result.text()));
    assert_eq!(
        answer,
        format!(
            "scanned {LINES} lines ({file_bytes} chars)\n\
             stored 10 ERROR lines in app.log errors\n\
             first: {}",
            expected_errors[0]
        )
    );
    // What went back to the model is small; the file was not.
    let sent = result.text().len()
        + serde_json::to_string(result.structured())
            .expect("JSON")
            .len();
    assert!(sent < 1024, "{sent} bytes went back: {}", result.text());

    // The memory server really has them, in order, on its own disk.
    let graph = std::fs::read_to_string(&memory_file).expect("the memory server wrote its file");
    let entities: Vec<Value> = graph
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSONL line"))
        .collect();
    assert_eq!(
        entities,
        [json!({
            "type": "entity",
            "name": "app.log errors",
            "entityType": "log-summary",
            "observations": expected_errors,
        })]
    );

    // A later call in the same session reads them back without touching the file again.
    let result = server
        .execute("(await servers.memory.open_nodes({names: ['app.log errors']})).entities[0].observations.length")
        .await;
    assert_eq!(result.value(), &json!(10));
}
