//! The upstream catalogue as agent code and the MCP client see it: listing tools at the three
//! detail levels, calling server-filesystem over a directory of our own, searching (the
//! `search_tools` MCP tool and `mcp.tools.search` in code), the `tool://` resources, upstream
//! resources, and `notifications/tools/list_changed`.

use mcpk_tests::upstream::{
    TempDir, UPSTREAM_READY_DEADLINE, filesystem_entry, fixture_entry, utf8, write_config,
};
use mcpk_tests::{ExecuteResult as _, Server};
use rmcp::model::ReadResourceRequestParams;
use serde_json::{Value, json};

/// Tools of `mcpk-fixture` without `--tools-changed-after-ms`, sorted.
const FIXTURE_TOOLS: [&str; 16] = [
    "audio",
    "big",
    "cancellations",
    "crash",
    "echo",
    "env",
    "fail",
    "grow_echo",
    "hang",
    "hang_tools_list",
    "image",
    "pid",
    "rendezvous",
    "slow",
    "stderr_flood",
    "structured",
];

/// A directory with two files and a subdirectory, served by server-filesystem, plus the fixture.
async fn fs_and_fixture(dir: &TempDir) -> Server {
    dir.write("files/notes.txt", "alpha\nbeta\ngamma\n");
    dir.write("files/data.json", r#"{"k": [1, 2]}"#);
    std::fs::create_dir_all(dir.join("files/sub")).expect("mkdir sub");
    let config = write_config(
        dir,
        json!({"fs": filesystem_entry(&dir.join("files")), "fixture": fixture_entry(&[])}),
    );
    Server::start_with_upstreams(&config, &[], &[], &["fs", "fixture"]).await
}

fn names(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {entries}"))
        .iter()
        .map(|e| {
            format!(
                "{}.{}",
                e["server"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn code_lists_upstream_tools_at_three_detail_levels_and_calls_server_filesystem() {
    let dir = TempDir::new("catalog");
    let server = fs_and_fixture(&dir).await;
    let files = dir.join("files");

    // names: exactly {server, name}, the fixture's tools.
    let listed = server
        .execute("await mcp.tools.list({server: 'fixture', detail: 'names'})")
        .await;
    let expected: Vec<Value> = FIXTURE_TOOLS
        .iter()
        .map(|t| json!({"server": "fixture", "name": t}))
        .collect();
    assert_eq!(listed.value(), &Value::Array(expected));

    // signatures (the default): a TypeScript line and the first sentence, for every server.
    let all = server.execute("await mcp.tools.list()").await;
    let all = all.value().as_array().expect("array").clone();
    let all_names = names(&Value::Array(all.clone()));
    for wanted in [
        "fs.read_text_file",
        "fs.list_directory",
        "fixture.structured",
    ] {
        assert!(
            all_names.contains(&wanted.to_owned()),
            "{wanted} in {all_names:?}"
        );
    }
    assert!(
        all.iter()
            .all(|t| t["server"] == "fs" || t["server"] == "fixture")
    );
    let structured = all
        .iter()
        .find(|t| t["name"] == "structured")
        .expect("fixture.structured");
    assert_eq!(
        structured,
        &json!({
            "server": "fixture",
            "name": "structured",
            "signature": "servers.fixture.structured(args: {n: number}): Promise<{n: number; doubled: number}>",
            "description": "Returns structuredContent {n, doubled: 2n} and the same as JSON text."
        })
    );
    let read = all
        .iter()
        .find(|t| t["name"] == "read_text_file")
        .expect("fs.read_text_file");
    let signature = read["signature"].as_str().unwrap();
    assert!(
        signature.starts_with("servers.fs.read_text_file(args: {path: string"),
        "{signature}"
    );

    // full: the schemas and annotations as the upstream sent them.
    let full = server
        .execute(
            "(await mcp.tools.list({server: 'fixture', detail: 'full'})).find(t => t.name === 'structured')",
        )
        .await;
    let full = full.value();
    assert_eq!(full["inputSchema"]["required"], json!(["n"]));
    assert_eq!(
        full["inputSchema"]["properties"]["n"],
        json!({"type": "integer"})
    );
    assert_eq!(full["outputSchema"]["required"], json!(["n", "doubled"]));
    assert_eq!(full["annotations"], json!({"readOnlyHint": true}));
    assert_eq!(full["signature"], structured["signature"]);

    // Calls: the files we wrote, through the real server-filesystem.
    let code = format!(
        "const dir = {dir}; \
         const listing = await servers.fs.list_directory({{path: dir}}); \
         const notes = await servers.fs.read_text_file({{path: dir + '/notes.txt'}}); \
         const head = await mcp.tools.call('fs', 'read_text_file', {{path: dir + '/notes.txt', head: 1}}); \
         const data = await servers['fs']['read_text_file']({{path: dir + '/data.json'}}); \
         return {{listing: listing.content.split('\\n').sort(), notes, head, data: JSON.parse(data.content)}}",
        dir = json!(utf8(&files))
    );
    let result = server.execute(&code).await;
    assert_eq!(
        result.value(),
        &json!({
            "listing": ["[DIR] sub", "[FILE] data.json", "[FILE] notes.txt"],
            "notes": {"content": "alpha\nbeta\ngamma\n"},
            "head": {"content": "alpha"},
            "data": {"k": [1, 2]}
        })
    );

    // Outside the allowed directory, server-filesystem refuses: a ToolError, not data.
    let result = server
        .execute("await servers.fs.read_text_file({path: '/etc/hostname'})")
        .await;
    assert_eq!(result.error_name(), "ToolError", "{}", result.text());
    let message = result.error_message();
    assert!(message.starts_with("fs.read_text_file: "), "{message}");
    assert!(message.contains("outside allowed directories"), "{message}");
}

#[tokio::test]
async fn search_tools_and_mcp_tools_search_rank_the_same_tools_at_each_detail() {
    let dir = TempDir::new("search");
    let server = fs_and_fixture(&dir).await;

    // names: one `server.tool` line per result, the same list as structuredContent.
    let result = server
        .search_tools(
            json!({"query": "read text file", "server": "fs", "detail": "names", "limit": 3}),
        )
        .await;
    let found: Vec<String> = result.text().lines().map(str::to_owned).collect();
    assert_eq!(found.len(), 3, "{found:?}");
    // (server-filesystem's deprecated `read_file` ranks below `read_text_file`, which replaces
    // it; its description says "Use read_text_file instead", which holds every query word.)
    assert_eq!(found[0], "fs.read_text_file", "{found:?}");
    assert!(found.iter().all(|n| n.starts_with("fs.")), "{found:?}");
    // Said once, as text: nothing is repeated in structuredContent.
    assert_eq!(result.structured_content, None);

    // The same search from code gives the same entries.
    let in_code = server
        .execute(
            "await mcp.tools.search('read text file', {server: 'fs', detail: 'names', limit: 3})",
        )
        .await;
    assert_eq!(names(in_code.value()), found);

    // signatures: a comment line with the summary, then the signature.
    let result = server
        .search_tools(
            json!({"query": "double an integer structured", "server": "fixture", "limit": 1}),
        )
        .await;
    assert_eq!(
        result.text(),
        "// Returns structuredContent {n, doubled: 2n} and the same as JSON text.\n\
         servers.fixture.structured({n: number}): Promise<{n: number; doubled: number}>\n"
    );
    let in_code = server
        .execute(
            "await mcp.tools.search('double an integer structured', {server: 'fixture', limit: 1})",
        )
        .await;
    assert_eq!(
        in_code.value(),
        &json!([{
            "server": "fixture",
            "name": "structured",
            "signature": "servers.fixture.structured(args: {n: number}): Promise<{n: number; doubled: number}>",
            "description": "Returns structuredContent {n, doubled: 2n} and the same as JSON text.",
        }])
    );

    // full: the .d.ts declaration, the same text the tool:// resource serves.
    let result = server
        .search_tools(
            json!({"query": "structured", "server": "fixture", "detail": "full", "limit": 1}),
        )
        .await;
    let declaration = result.text().to_owned();
    assert_eq!(
        declaration,
        "/**\n * Returns structuredContent {n, doubled: 2n} and the same as JSON text.\n *\n \
         * @readOnly\n */\n\
         declare function servers.fixture.structured(args: StructuredArgs): Promise<StructuredOutput>;\n\n\
         interface StructuredArgs {\n  n: number;\n}\n\n\
         interface StructuredOutput {\n  n: number;\n  doubled: number;\n}\n\n"
    );
    let in_code = server
        .execute("(await mcp.tools.search('structured', {server: 'fixture', detail: 'full', limit: 1}))[0]")
        .await;
    assert_eq!(in_code.value()["inputSchema"]["required"], json!(["n"]));

    let read = server
        .client()
        .read_resource(ReadResourceRequestParams::new(
            "tool://fixture/structured.d.ts",
        ))
        .await
        .expect("read tool://fixture/structured.d.ts");
    let contents = serde_json::to_value(&read.contents).expect("JSON");
    assert_eq!(contents[0]["uri"], "tool://fixture/structured.d.ts");
    assert_eq!(contents[0]["mimeType"], "application/typescript");
    assert_eq!(
        contents[0]["text"].as_str().unwrap().trim_end(),
        declaration.trim_end()
    );

    // Every catalogue tool is a resource, and nothing else is.
    let resources = server
        .client()
        .list_all_resources()
        .await
        .expect("resources/list");
    // The tool:// resources (the session:// and skill:// ones are tested in `sessions` and
    // `skills`).
    let mut uris: Vec<String> = resources
        .iter()
        .map(|r| r.uri.to_string())
        .filter(|uri| uri.starts_with("tool://"))
        .collect();
    uris.sort();
    let catalog = server.catalog().await;
    let mut expected: Vec<String> = names(&catalog["tools"])
        .iter()
        .map(|n| {
            let (s, t) = n.split_once('.').unwrap();
            format!("tool://{s}/{t}.d.ts")
        })
        .collect();
    expected.sort();
    assert_eq!(uris, expected);
    let read_file = resources
        .iter()
        .find(|r| r.uri == "tool://fs/read_text_file.d.ts")
        .expect("tool://fs/read_text_file.d.ts");
    assert_eq!(
        read_file.mime_type.as_deref(),
        Some("application/typescript")
    );

    // An unknown resource is a JSON-RPC error naming it.
    for uri in [
        "tool://fixture/nope.d.ts",
        "tool://nope/echo.d.ts",
        "file:///etc/passwd",
    ] {
        let error = server
            .client()
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .expect_err("an unknown resource is an error");
        let rmcp::ServiceError::McpError(error) = error else {
            panic!("{uri}: not a JSON-RPC error: {error}");
        };
        assert_eq!(error.code.0, -32002, "{uri}: {error:?}");
        assert!(error.message.contains(uri), "{uri}: {}", error.message);
    }
}

#[tokio::test]
async fn code_lists_and_reads_upstream_resources() {
    let dir = TempDir::new("resources");
    let server = fs_and_fixture(&dir).await;
    let result = server
        .execute(
            "const all = await mcp.resources.list(); \
             return {readme: all.filter(r => r.server === 'fixture'), \
                     text: await mcp.resources.read('fixture://readme'), \
                     direct: await mcp.resources.read('fixture://readme', {server: 'fixture'})}",
        )
        .await;
    let value = result.value();
    assert_eq!(
        value["readme"],
        json!([{
            "server": "fixture",
            "uri": "fixture://readme",
            "name": "readme",
            "mimeType": "text/plain",
            "description": "A short text resource"
        }])
    );
    let contents =
        json!([{"uri": "fixture://readme", "mimeType": "text/plain", "text": "fixture readme"}]);
    assert_eq!(value["text"], contents);
    assert_eq!(value["direct"], contents);

    let result = server
        .execute("await mcp.resources.read('fixture://nope', {server: 'fixture'})")
        .await;
    assert_eq!(result.error_name(), "ToolError", "{}", result.text());
    result.assert_message_contains(&["fixture://nope"]);
}

/// The fixture adds tool `late` 1 s after start-up and sends `tools/list_changed`. (1 s rather
/// than less so that, on a loaded machine, the test still sees the catalogue before the change.)
#[tokio::test]
async fn a_tool_added_upstream_becomes_listed_and_callable() {
    let dir = TempDir::new("list-changed");
    let config = write_config(
        &dir,
        json!({"fixture": fixture_entry(&["--tools-changed-after-ms", "1000"])}),
    );
    let server = Server::start_with_upstreams(&config, &[], &[], &["fixture"]).await;
    let before = server.catalog().await;
    assert_eq!(
        names(&before["tools"]),
        FIXTURE_TOOLS.map(|t| format!("fixture.{t}")),
        "the catalogue before the change"
    );
    let result = server.execute("await servers.fixture.late()").await;
    assert_eq!(result.error_name(), "ToolError", "{}", result.text());
    result.assert_message_contains(&["has no tool `late`"]);

    let started = std::time::Instant::now();
    let after = loop {
        let catalog = server.catalog().await;
        if names(&catalog["tools"]).contains(&"fixture.late".to_owned()) {
            break catalog;
        }
        assert!(
            started.elapsed() < UPSTREAM_READY_DEADLINE,
            "`late` never appeared; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        after["tools"].as_array().unwrap().len(),
        FIXTURE_TOOLS.len() + 1
    );

    let result = server.execute("await servers.fixture.late()").await;
    assert_eq!(result.value(), &json!("late"));
    let result = server
        .execute("(await mcp.tools.search('late', {detail: 'names', limit: 1}))")
        .await;
    assert_eq!(
        result.value(),
        &json!([{"server": "fixture", "name": "late"}])
    );
}

/// Regression: every supervisor rebuilds the catalogue when its server becomes ready, and a
/// rebuild that read the statuses earlier could store its snapshot after a newer one, leaving
/// a ready server out of the catalogue until some later change. Many servers becoming ready at
/// once make it likely: before the fix, about one round in fifteen lost a server, so this test
/// failed in most runs (it is a race; a pass does not prove it gone).
#[tokio::test]
async fn upstreams_ready_at_the_same_moment_all_reach_the_catalog() {
    const SERVERS: usize = 24;
    for round in 0..25 {
        let dir = TempDir::new("simultaneous");
        let servers: serde_json::Map<String, Value> = (0..SERVERS)
            .map(|i| (format!("f{i}"), fixture_entry(&[])))
            .collect();
        let config = write_config(&dir, Value::Object(servers));
        let server = Server::start_with_env(&["--config", utf8(&config)], &[]).await;
        // Every server answers calls, so every one is ready...
        let code = (0..SERVERS)
            .map(|i| format!("servers.f{i}.echo({{value: {i}}})"))
            .collect::<Vec<_>>()
            .join(", ");
        let result = server
            .execute(&format!("(await Promise.all([{code}])).map(r => r.value)"))
            .await;
        assert_eq!(result.value(), &json!((0..SERVERS).collect::<Vec<_>>()));
        // ...so within a short while every one is in the catalogue.
        let started = std::time::Instant::now();
        loop {
            let listed = server
                .execute("[...new Set((await mcp.tools.list({detail: 'names'})).map(t => t.server))].sort()")
                .await;
            let listed = listed.value().as_array().expect("array").len();
            if listed == SERVERS {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "round {round}: all {SERVERS} servers answer calls, but only {listed} are in the \
                 catalogue"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The three reference servers: server-filesystem over an empty directory, server-memory and
/// server-everything.
async fn reference_servers(dir: &TempDir) -> Server {
    std::fs::create_dir_all(dir.join("files")).expect("mkdir files");
    let config = write_config(
        dir,
        json!({
            "fs": filesystem_entry(&dir.join("files")),
            "memory": mcpk_tests::upstream::memory_entry(&dir.join("memory.jsonl")),
            "everything": mcpk_tests::upstream::everything_entry(),
        }),
    );
    Server::start_with_upstreams(&config, &[], &[], &["fs", "memory", "everything"]).await
}

#[tokio::test]
async fn realistic_queries_find_the_expected_tool_in_the_top_three() {
    let dir = TempDir::new("search-quality");
    let server = reference_servers(&dir).await;
    let mut misses = Vec::new();
    for (query, expected) in [
        ("read a text file", "fs.read_text_file"),
        ("list files in a directory", "fs.list_directory"),
        ("find files matching a pattern", "fs.search_files"),
        ("rename or move a file", "fs.move_file"),
        ("file size and modification time", "fs.get_file_info"),
        ("make a new directory", "fs.create_directory"),
        ("add facts about an entity", "memory.add_observations"),
        ("search the knowledge graph", "memory.search_nodes"),
        ("add two numbers", "everything.get-sum"),
        ("environment variables", "everything.get-env"),
        (
            "long running operation with progress",
            "everything.trigger-long-running-operation",
        ),
    ] {
        let result = server
            .search_tools(json!({"query": query, "detail": "names", "limit": 3}))
            .await;
        let found: Vec<&str> = result.text().lines().collect();
        if !found.contains(&expected) {
            misses.push(format!("{query:?}: expected {expected}, got {found:?}"));
        }
    }
    assert!(misses.is_empty(), "{misses:#?}");
}

#[tokio::test]
async fn a_deprecated_tool_ranks_below_its_replacement_and_says_so() {
    let dir = TempDir::new("search-deprecated");
    let server = reference_servers(&dir).await;
    let result = server
        .search_tools(json!({"query": "read the contents of a file", "server": "fs", "limit": 10}))
        .await;
    let text = result.text();
    let position = |name: &str| {
        text.find(&format!("servers.fs.{name}("))
            .unwrap_or_else(|| panic!("{name} not found: {text}"))
    };
    assert!(position("read_text_file") < position("read_file"), "{text}");
    assert!(
        text.contains("// Read the complete contents of a file as text. DEPRECATED: Use read_text_file instead.\nservers.fs.read_file("),
        "{text}"
    );
}

#[tokio::test]
async fn five_signatures_cost_at_most_200_tokens() {
    let dir = TempDir::new("search-tokens");
    let server = reference_servers(&dir).await;
    let bpe = tiktoken_rs::o200k_base().expect("o200k_base");
    for (query, server_name) in [
        ("read file", None),
        ("knowledge graph entities", None),
        ("get a message or resource", Some("everything")),
    ] {
        let result = server
            .search_tools(json!({"query": query, "server": server_name, "limit": 5}))
            .await;
        // What a client sees: the text and (here none) structuredContent.
        let seen = result.seen_by_model();
        let tools = result
            .text()
            .lines()
            .filter(|l| l.starts_with("servers."))
            .count();
        assert_eq!(tools, 5, "{seen}");
        let tokens = bpe.encode_ordinary(&seen).len();
        assert!(tokens <= 200, "{query:?}: {tokens} tokens:\n{seen}");
    }
}

#[tokio::test]
async fn a_listing_that_does_not_show_every_tool_says_how_many_there_are() {
    let dir = TempDir::new("search-listing");
    let server = reference_servers(&dir).await;
    let result = server
        .search_tools(json!({"query": "", "detail": "names", "limit": 3}))
        .await;
    let text = result.text();
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("Showing 3 of ")
            && header.contains("everything: ")
            && header.contains("fs: ")
            && header.contains("memory: 9"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4, "{text}");
    // A listing that shows everything has no header.
    let all = server
        .search_tools(json!({"query": "", "server": "memory", "detail": "names", "limit": 100}))
        .await;
    assert_eq!(all.text().lines().count(), 9, "{}", all.text());
}

/// The `tool://` declaration of `server.tool`.
async fn declaration_of(server: &Server, server_name: &str, tool: &str) -> String {
    let uri = format!("tool://{server_name}/{tool}.d.ts");
    let read = server
        .client()
        .read_resource(ReadResourceRequestParams::new(uri.clone()))
        .await
        .unwrap_or_else(|e| panic!("read {uri}: {e}"));
    let contents = serde_json::to_value(&read.contents).expect("JSON");
    contents[0]["text"].as_str().unwrap_or_default().to_owned()
}

/// The `signatures` line of `server.tool` in a `search_tools` listing.
async fn listed_signature(server: &Server, server_name: &str, tool: &str) -> String {
    let result = server
        .search_tools(json!({"query": tool, "server": server_name, "limit": 100}))
        .await;
    let prefix = format!("servers.{server_name}.{tool}(");
    result
        .text()
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{prefix} not listed: {}", result.text()))
        .to_owned()
}

#[tokio::test]
async fn tools_without_an_output_schema_get_the_return_type_their_results_show() {
    let dir = TempDir::new("observed-types");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(&config, &[], &[], &["fixture"]).await;
    // Before any call: unknown.
    assert!(
        listed_signature(&server, "fixture", "echo")
            .await
            .ends_with("): Promise<unknown>")
    );
    // Three results, with a field that only some have, a small enum seen in every result, and
    // a secret seen in every result.
    let code = "for (const extra of [{}, {tags: ['a']}, {}]) \
                { await servers.fixture.echo({value: {kind: 'file', token: 'sk-9f8e7d6c5b4a', size: 1, ...extra}}); \
                  await servers.fixture.echo({value: {kind: 'directory', token: 'sk-9f8e7d6c5b4a', size: 2}}) } \
                return 'ok'";
    assert_eq!(server.execute(code).await.value(), &json!("ok"));
    let expected = "Promise<{value: {kind: \"directory\" | \"file\"; size: number; token: string; tags?: string[]}}> /* observed */";
    // A listing cuts return types to one level; code sees the whole signature, and the
    // tool:// declaration says how many results it was learned from.
    let listed = listed_signature(&server, "fixture", "echo").await;
    assert!(
        listed.ends_with("Promise<{value: {…}}> /* observed */"),
        "{listed}"
    );
    let in_code = server
        .execute("(await mcp.tools.search('echo', {server: 'fixture', limit: 1}))[0].signature")
        .await;
    assert!(
        in_code
            .value()
            .as_str()
            .unwrap_or_default()
            .ends_with(expected),
        "{:?}",
        in_code.value()
    );
    let declaration = declaration_of(&server, "fixture", "echo").await;
    assert!(
        declaration.contains(
            "Promise<{value: {kind: \"directory\" | \"file\"; size: number; token: string; tags?: string[]}}>; /* observed in 6 results: the server declares no outputSchema */"
        ),
        "{declaration}"
    );
    assert!(!listed.contains("sk-") && !declaration.contains("sk-"));
    // A tool with an outputSchema keeps its declared type.
    server
        .execute("await servers.fixture.structured({n: 2})")
        .await
        .value();
    let structured = listed_signature(&server, "fixture", "structured").await;
    assert!(
        structured.ends_with("Promise<{n: number; doubled: number}>"),
        "{structured}"
    );
}

#[tokio::test]
async fn the_reference_servers_tools_get_observed_return_types() {
    let dir = TempDir::new("observed-reference");
    let server = reference_servers(&dir).await;
    // server-everything declares no outputSchema for `echo` and `get-sum`; `echo` answers text.
    server
        .execute("await servers.everything.echo({message: 'hi'}); await servers.everything['get-sum']({a: 1, b: 2})")
        .await
        .value();
    for (tool, expected) in [
        ("echo", "Promise<string> /* observed */"),
        ("get-sum", "Promise<string> /* observed */"),
    ] {
        let result = server
            .search_tools(json!({"query": tool, "server": "everything", "limit": 100}))
            .await;
        let line = result
            .text()
            .lines()
            .find(|l| l.contains(&format!("[\"{tool}\"](")) || l.contains(&format!(".{tool}(")))
            .unwrap_or_else(|| panic!("{tool} not listed: {}", result.text()))
            .to_owned();
        assert!(line.ends_with(expected), "{line}");
    }
}
