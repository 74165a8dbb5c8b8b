//! The worker sandbox, checked from outside through /proc: every worker runs under seccomp with
//! `no_new_privs`, with its address space capped at `memory_mib`, no core files, no file
//! writes, few descriptors and an empty environment; and the realm exposes no host access.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map_or("", str::trim)
}

#[tokio::test]
async fn every_worker_runs_confined() {
    let server = Server::start_with(&["--memory-mib", "200", "--warm-workers", "1"]).await;
    assert_eq!(server.execute("1 + 1").await.value(), &json!(2));
    let workers = server.wait_for_workers(2).await;
    for pid in workers {
        // A warm worker may still be starting (it installs seccomp just before it reports
        // Ready, and evaluates nothing before that): give it a bounded time to get there.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            if field(&status, "Seccomp:") == "2" || std::time::Instant::now() > deadline {
                break status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(
            field(&status, "Seccomp:"),
            "2",
            "worker {pid} seccomp filter mode"
        );
        assert_eq!(field(&status, "NoNewPrivs:"), "1", "worker {pid}");
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let limit = |name: &str| -> Vec<String> {
            field(&limits, name)
                .split_whitespace()
                .take(2)
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            limit("Max address space"),
            ["209715200", "209715200"],
            "200 MiB"
        );
        assert_eq!(limit("Max core file size"), ["0", "0"]);
        assert_eq!(limit("Max file size"), ["0", "0"]);
        assert_eq!(limit("Max open files"), ["64", "64"]);
        // A quarter of memory_mib for JavaScript's native stack (kernel/src/sandbox.rs).
        assert_eq!(limit("Max stack size"), ["52428800", "52428800"], "50 MiB");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert_eq!(environ, b"MALLOC_ARENA_MAX=1\0", "worker {pid} environment");
    }
}

#[tokio::test]
async fn the_realm_has_no_way_to_the_host() {
    let server = Server::start().await;
    let result = server
        .execute(
            "return [typeof require, typeof process, typeof fetch, typeof Deno, typeof Bun, \
             typeof XMLHttpRequest, typeof WebSocket]",
        )
        .await;
    assert_eq!(result.value(), &json!(vec!["undefined"; 7]));
    let result = server
        .execute("try { await import('fs'); return 'imported' } catch (e) { return e.name }")
        .await;
    assert!(!result.is_error(), "{}", result.text());
    assert_ne!(result.value(), &json!("imported"));
}

#[tokio::test]
async fn mcp_cannot_be_replaced_or_deleted() {
    let server = Server::start().await;
    // The global object is frozen (lockdown) and code is strict: both attempts throw.
    for code in ["globalThis.mcp = 1", "delete globalThis.mcp"] {
        let result = server.execute(code).await;
        assert_eq!(
            result.error_name(),
            "TypeError",
            "{code}: {}",
            result.text()
        );
    }
    let result = server.execute("mcp.state.ok = true; typeof mcp").await;
    assert_eq!(result.value(), &json!("object"), "{}", result.text());
    assert_eq!(server.execute("mcp.state.ok").await.value(), &json!(true));
}
