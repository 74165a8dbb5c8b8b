//! Secrets in the configuration (`${VAR}` in an upstream's `env` or `headers`) reach the
//! upstream and nothing else: not the catalogue, not error messages, not the sandbox's globals,
//! not the worker processes' environment, not the server's log.

use mcpk_tests::upstream::{TempDir, everything_entry, fixture_entry, free_port, write_config};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

#[tokio::test]
async fn an_expanded_secret_reaches_its_upstream_and_nothing_the_sandbox_can_see() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let secret = format!("mcpk-s3cret-{}-{nanos}", std::process::id());
    let dir = TempDir::new("secrets");
    let mut everything = everything_entry();
    everything["env"] = json!({"MCPK_UPSTREAM_TOKEN": "${MCPK_TEST_SECRET}"});
    let mut fixture = fixture_entry(&[]);
    fixture["env"] = json!({"TOKEN": "${MCPK_TEST_SECRET}"});
    let config = write_config(
        &dir,
        json!({
            "everything": everything,
            "fixture": fixture,
            // Nothing listens there: its errors must not carry the header either.
            "remote": {
                "url": format!("http://127.0.0.1:{}/mcp", free_port()),
                "headers": {"Authorization": "Bearer ${MCPK_TEST_SECRET}"}
            },
        }),
    );
    let server = Server::start_with_upstreams(
        &config,
        &[],
        &[("MCPK_TEST_SECRET", &secret)],
        &["everything", "fixture"],
    )
    .await;

    // Positive control: the upstream's environment has it (server-everything's get-env tool
    // returns its process.env), so the searches below look for a value that exists.
    let result = server
        .execute("(await servers.everything['get-env']()).MCPK_UPSTREAM_TOKEN")
        .await;
    assert_eq!(result.value(), &json!(secret));
    let supervisor_env = std::fs::read(format!("/proc/{}/environ", server.pid()))
        .expect("read the supervisor's environment");
    assert!(
        String::from_utf8_lossy(&supervisor_env).contains(&secret),
        "the control: the supervisor's environment holds the secret"
    );

    // Everything code can reach, gathered in the kernel and searched there (no truncation).
    let code = format!(
        "const secret = {secret};
         const seen = [];
         seen.push(JSON.stringify(await mcp.tools.list({{detail: 'full'}})));
         seen.push(JSON.stringify(await mcp.tools.search('token env', {{detail: 'full', limit: 100}})));
         seen.push(JSON.stringify(await mcp.resources.list()));
         seen.push(JSON.stringify(Object.getOwnPropertyNames(globalThis)));
         for (const k of Object.getOwnPropertyNames(globalThis)) {{
           try {{
             const v = globalThis[k];
             seen.push(k, String(v));
             if (v !== null && (typeof v === 'object' || typeof v === 'function')) {{
               for (const p of Object.getOwnPropertyNames(v)) {{
                 try {{ seen.push(p, String(v[p])); }} catch (e) {{ seen.push(String(e)); }}
               }}
             }}
           }} catch (e) {{ seen.push(String(e)); }}
         }}
         for (const v of [mcp, servers]) {{
           try {{ seen.push(JSON.stringify(v)); }} catch (e) {{ seen.push(String(e)); }}
         }}
         for (const call of [() => servers.remote.anything(), () => servers.nope.x(), () => mcp.resources.read('x://y')]) {{
           try {{ await call(); }} catch (e) {{ seen.push(e.message); }}
         }}
         const all = seen.join('\\n');
         return {{bytes: all.length, leaks: all.includes(secret),
                  sawCatalogue: all.includes('get-env') && all.includes('servers.fixture.structured'),
                  sawRemoteError: all.includes('server `remote` is unavailable'),
                  sawGlobals: all.includes('ToolError') && all.includes('setTimeout')}}",
        secret = json!(secret)
    );
    let result = server.execute(&code).await;
    let value = result.value();
    assert_eq!(value["leaks"], false, "{value}");
    assert_eq!(value["sawCatalogue"], true, "{value}");
    assert_eq!(value["sawRemoteError"], true, "{value}");
    assert_eq!(value["sawGlobals"], true, "{value}");
    assert!(value["bytes"].as_u64() > Some(10_000), "{value}");
    assert!(!result.text().contains(&secret));

    // What the MCP client can see.
    let searched = server
        .search_tools(json!({"query": "", "detail": "full", "limit": 100}))
        .await;
    assert!(!format!("{searched:?}").contains(&secret));
    let resources = server
        .client()
        .list_all_resources()
        .await
        .expect("resources/list");
    assert!(!format!("{resources:?}").contains(&secret));

    // The workers' environments (they are started with a cleared environment).
    let workers = server.workers();
    assert!(!workers.is_empty());
    for pid in workers {
        let environ = std::fs::read(format!("/proc/{pid}/environ"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/environ: {e}"));
        assert!(
            !String::from_utf8_lossy(&environ).contains(&secret),
            "worker {pid}'s environment holds the secret"
        );
    }

    // The server's own log.
    assert!(
        !server.stderr().contains(&secret),
        "the log holds the secret"
    );
}
