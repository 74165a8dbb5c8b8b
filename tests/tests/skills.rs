//! The skills library through the real binary: saved in one session, callable in every
//! session of the tenant and after a restart (Redis), refused when it does not parse, listed
//! as `skill://` resources and by `search_tools`, and warning when a tool it calls changed.

use mcpk_tests::upstream::{TempDir, fixture_entry, write_config};
use mcpk_tests::{ExecuteResult as _, Server, kill_9, unique_prefix};
use rmcp::model::ReadResourceRequestParams;
use serde_json::json;

const SAVE_DOUBLE: &str = "\
    await mcp.skills.save('double', async (n) => n * 2, {description: 'Doubles a number.'});\n\
    await mcp.skills.save('quadruple', 'async function (n) { return await skills.double(await skills.double(n)); }', \
      {description: 'Four times a number, by calling double twice.'});\n\
    return 'saved'";

#[tokio::test]
async fn a_saved_skill_is_callable_from_every_session_and_after_a_restart() {
    let prefix = unique_prefix();
    let server = Server::start_redis(&prefix, &[]).await;
    let saved = server.execute_in("author", SAVE_DOUBLE).await;
    assert_eq!(saved.value(), &json!("saved"), "{}", saved.text());
    // Usable in the same call that saved it, too.
    let same = server
        .execute_in(
            "author",
            "await mcp.skills.save('inc', n => n + 1); return skills.inc(1)",
        )
        .await;
    assert_eq!(same.value(), &json!(2), "{}", same.text());
    let elsewhere = server
        .execute_in(
            "user",
            "[await skills.double(21), await skills.quadruple(5)]",
        )
        .await;
    assert_eq!(elsewhere.value(), &json!([42, 20]), "{}", elsewhere.text());

    let listed = server
        .execute("return (await mcp.skills.list()).map(s => [s.name, s.params, s.revision])")
        .await;
    assert_eq!(
        listed.value(),
        // By name.
        &json!([
            ["double", ["n"], 1],
            ["inc", ["n"], 1],
            ["quadruple", ["n"], 1]
        ]),
        "{}",
        listed.text()
    );
    kill_9(server.pid());
    drop(server);

    let server = Server::start_redis(&prefix, &[]).await;
    let after = server.execute("return skills.quadruple(10)").await;
    assert_eq!(after.value(), &json!(40), "{}", after.text());
    let got = server
        .execute("return (await mcp.skills.get('double')).source")
        .await;
    assert_eq!(got.value(), &json!("async (n) => n * 2"), "{}", got.text());
    let deleted = server
        .execute("const d = await mcp.skills.delete('inc'); return [d, typeof skills.inc]")
        .await;
    assert_eq!(
        deleted.value(),
        &json!([true, "undefined"]),
        "{}",
        deleted.text()
    );
    let gone = server.execute_in("other", "typeof skills.inc").await;
    assert_eq!(gone.value(), &json!("undefined"));
}

#[tokio::test]
async fn a_skill_that_does_not_parse_is_refused_and_nothing_is_saved() {
    let server = Server::start().await;
    for (source, name) in [
        ("'(n) => { return n +'", "SyntaxError"),
        ("'1 + 2'", "TypeError"),
    ] {
        let refused = server
            .execute(&format!(
                "await mcp.skills.save('broken', {source}); return 'saved'"
            ))
            .await;
        assert_eq!(refused.error_name(), name, "{source}: {}", refused.text());
    }
    let bad_name = server
        .execute("await mcp.skills.save('no spaces', () => 1)")
        .await;
    assert!(bad_name.is_error(), "{}", bad_name.text());
    bad_name.assert_message_contains(&["no spaces"]);
    let listed = server
        .execute("return (await mcp.skills.list()).length")
        .await;
    assert_eq!(listed.value(), &json!(0), "{}", listed.text());
}

#[tokio::test]
async fn a_skill_source_is_capped_at_64_kib() {
    let server = Server::start().await;
    // `() => '<x…>'`: 8 bytes of code around the string literal.
    let at_limit = server
        .execute("await mcp.skills.save('big', \"() => '\" + 'x'.repeat(65536 - 8) + \"'\"); return (await skills.big()).length")
        .await;
    assert_eq!(at_limit.value(), &json!(65536 - 8), "{}", at_limit.text());
    let over = server
        .execute("await mcp.skills.save('bigger', \"() => '\" + 'x'.repeat(65536 - 7) + \"'\")")
        .await;
    assert_eq!(over.error_name(), "RangeError", "{}", over.text());
    over.assert_message_contains(&["65537", "65536"]);
}

#[tokio::test]
async fn skills_are_resources_and_are_found_by_search_tools() {
    let server = Server::start().await;
    assert!(!server.execute(SAVE_DOUBLE).await.is_error());
    let resources = server
        .client()
        .list_all_resources()
        .await
        .expect("resources/list");
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(uris.contains(&"skill://double"), "{uris:?}");
    let read = server
        .client()
        .read_resource(ReadResourceRequestParams::new("skill://quadruple"))
        .await
        .expect("read skill://quadruple");
    let text = mcpk_tests::resource_text(&read);
    assert!(text.contains("Four times a number"), "{text}");
    assert!(
        text.contains("skills.double(await skills.double(n))"),
        "{text}"
    );

    let found = server
        .call_tool("search_tools", json!({"query": "double a number"}))
        .await
        .expect("search_tools");
    assert!(
        found
            .text()
            .starts_with("Saved skills:\nskills.double(n): Promise<unknown> — Doubles a number.\n"),
        "{}",
        found.text()
    );
}

#[tokio::test]
async fn a_skill_warns_when_a_tool_it_calls_changed_its_schema() {
    let dir = TempDir::new("skills-schema");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(&config, &[], &[], &["fixture"]).await;
    let saved = server
        .execute(
            "await mcp.skills.save('shout', async (v) => (await servers.fixture.echo({value: v})).value); \
             return [await skills.shout('hi'), (await mcp.skills.get('shout')).tools]",
        )
        .await;
    assert_eq!(
        saved.value(),
        &json!(["hi", [{"server": "fixture", "tool": "echo"}]]),
        "{}",
        saved.text()
    );
    assert!(saved.logs().is_empty(), "{:?}", saved.logs());

    server.grow_fixture_echo("default").await;
    let warned = server.execute("return skills.shout('again')").await;
    assert_eq!(warned.value(), &json!("again"), "{}", warned.text());
    let logs = warned.logs();
    assert!(
        logs.iter()
            .any(|(level, message)| level == "warn" && message.contains("fixture.echo")),
        "{logs:?}"
    );
}
