//! `serve --http`: streamable HTTP at `/mcp`, bearer tokens mapped to tenants, tenant
//! isolation of sessions, skills, cache entries and upstream servers, the HTTP limits, and
//! progress notifications while code runs (over HTTP and over stdio).

use mcpk_tests::ExecuteResult as _;
use mcpk_tests::http::{HttpClient, HttpServer, write_auth_file};
use mcpk_tests::upstream::{TempDir, fixture_entry, write_config};
use serde_json::{Value, json};

fn cached(result: &rmcp::model::CallToolResult) -> Value {
    result.structured()["cached"].clone()
}

#[tokio::test]
async fn each_http_client_has_its_own_default_session_and_shares_named_ones() {
    let server = HttpServer::start(&[]).await;
    let (a, b) = (server.client(None).await, server.client(None).await);
    assert_eq!(
        a.execute("mcp.state.n = 1; return 'set'").await.value(),
        "set"
    );
    assert_eq!(a.execute("return mcp.state.n").await.value(), 1);
    // Another MCP session (another Mcp-Session-Id) has another default session.
    assert_eq!(
        b.execute("return mcp.state.n ?? null").await.value(),
        &Value::Null
    );
    // A named session is the tenant's, whichever client names it.
    a.execute_with(json!({"code": "mcp.state.shared = 'from a'", "session": "team"}))
        .await;
    let read = b
        .execute_with(json!({"code": "return mcp.state.shared", "session": "team"}))
        .await;
    assert_eq!(read.value(), "from a");
}

#[tokio::test]
async fn requests_without_a_valid_bearer_token_get_401_and_a_challenge() {
    let dir = TempDir::new("http-auth");
    let auth = write_auth_file(&dir, &[("alpha", "token-alpha", None)]);
    let server = HttpServer::start(&["--auth-file", mcpk_tests::upstream::utf8(&auth)]).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let http = reqwest::Client::new();
    for (authorization, error) in [
        (None, None),
        (Some("Bearer token-beta"), Some("invalid_token")),
        (Some("token-alpha"), Some("invalid_request")),
    ] {
        let mut request = http
            .post(server.url())
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.expect("HTTP");
        assert_eq!(response.status(), 401, "{authorization:?}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("ASCII")
            .to_owned();
        assert!(
            challenge.starts_with("Bearer realm=\"mcp-kernel\""),
            "{challenge}"
        );
        match error {
            Some(error) => assert!(
                challenge.contains(&format!("error=\"{error}\"")),
                "{challenge}"
            ),
            None => assert!(!challenge.contains("error="), "{challenge}"),
        }
    }
    // The rmcp client with no token cannot even initialise; with the token it works.
    assert!(HttpClient::connect(server.url(), None).await.is_err());
    let client = server.client(Some("token-alpha")).await;
    assert_eq!(client.execute("return 6 * 7").await.value(), 42);
}

#[tokio::test]
async fn tenant_b_cannot_read_resume_list_or_cache_hit_tenant_a_s_sessions_skills_or_results() {
    let dir = TempDir::new("http-tenants");
    let auth = write_auth_file(&dir, &[("alpha", "ta", None), ("beta", "tb", None)]);
    let server = HttpServer::start(&["--auth-file", mcpk_tests::upstream::utf8(&auth)]).await;
    let a = server.client(Some("ta")).await;
    let b = server.client(Some("tb")).await;

    // Tenant A: a named session with a secret, a skill, and a cached result.
    let set = a
        .execute_with(
            json!({"code": "mcp.state.secret = 's3cret'; return 'ok'", "session": "ledger"}),
        )
        .await;
    assert_eq!(set.value(), "ok");
    let saved = a
        .execute("await mcp.skills.save('secretSkill', async () => 'a-only', {description: 'A skill of tenant alpha.'}); return 'saved'")
        .await;
    assert_eq!(saved.value(), "saved", "{}", saved.text());
    let code = "return [1, 2, 3].map(x => x * 7)";
    assert_eq!(cached(&a.execute(code).await), json!(false));
    assert_eq!(cached(&a.execute(code).await), json!("l1"));

    // Tenant B knows every name and still reaches nothing of A's.
    let resume = b
        .execute_with(json!({"code": "return mcp.state.secret ?? null", "session": "ledger", "session_mode": "resume"}))
        .await;
    assert!(
        resume.is_error(),
        "B resumed A's session: {}",
        resume.text()
    );
    assert!(!resume.seen_by_model().contains("s3cret"));
    let read = b
        .execute_with(json!({"code": "return mcp.state.secret ?? null", "session": "ledger"}))
        .await;
    assert_eq!(read.value(), &Value::Null, "B read A's state");
    let listed = b
        .execute("return {sessions: (await mcp.sessions.list()).map(s => s.name), skills: (await mcp.skills.list()).map(s => s.name), has: 'secretSkill' in skills}")
        .await;
    let listed = listed.value();
    assert_eq!(listed["skills"], json!([]), "{listed}");
    assert_eq!(listed["has"], json!(false), "{listed}");
    // B's own "ledger" (just created by its read) is listed; A's default session is not.
    assert!(
        listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == "ledger" || s == "default"),
        "{listed}"
    );
    let call = b.execute("return await skills.secretSkill()").await;
    assert!(call.is_error(), "{}", call.text());
    let first = b.execute(code).await;
    assert_eq!(
        (first.value(), cached(&first)),
        (&json!([7, 14, 21]), json!(false))
    );
    // Resources: none of A's skill:// or session:// entries, and reading them fails.
    let resources = b
        .service
        .peer()
        .list_all_resources()
        .await
        .expect("resources/list");
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(!uris.contains(&"skill://secretSkill"), "{uris:?}");
    let skill = b
        .service
        .peer()
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "skill://secretSkill",
        ))
        .await;
    assert!(skill.is_err(), "B read A's skill: {skill:?}");
    // A still has everything.
    let again = a
        .execute_with(json!({"code": "return [mcp.state.secret, await skills.secretSkill()]", "session": "ledger", "session_mode": "resume"}))
        .await;
    assert_eq!(
        again.value(),
        &json!(["s3cret", "a-only"]),
        "{}",
        again.text()
    );
}

#[tokio::test]
async fn an_mcp_session_opened_by_one_tenant_is_refused_to_another_tenant_s_token() {
    let dir = TempDir::new("http-hijack");
    let auth = write_auth_file(&dir, &[("alpha", "ta", None), ("beta", "tb", None)]);
    let server = HttpServer::start(&["--auth-file", mcpk_tests::upstream::utf8(&auth)]).await;
    let raw = server.raw_session(Some("ta")).await;
    let call = |token: &'static str, id: u64| {
        raw.post(
            Some(token),
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "execute", "arguments": {"code": "mcp.state.owner ??= 'first caller'; return mcp.state.owner"}}}),
        )
    };
    let own = call("ta", 2).await.text().await.expect("body");
    assert!(own.contains("first caller"), "{own}");
    // Tenant B's token on A's Mcp-Session-Id reaches nothing, whatever the method: a call,
    // a listing, the GET stream, or a DELETE that would end A's session.
    let stolen = call("tb", 3).await;
    assert_eq!(stolen.status(), 404);
    let body = stolen.text().await.expect("body");
    assert!(!body.contains("first caller"), "{body}");
    let listed = raw
        .post(
            Some("tb"),
            json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}),
        )
        .await;
    assert_eq!(listed.status(), 404);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let refused = raw
            .request(method.clone(), Some("tb"))
            .send()
            .await
            .expect("HTTP");
        assert_eq!(refused.status(), 404, "{method}");
    }
    // A's session is intact.
    let again = call("ta", 5).await.text().await.expect("body");
    assert!(again.contains("first caller"), "{again}");
}

#[tokio::test]
async fn a_tenant_sees_and_calls_only_the_upstream_servers_its_allowlist_names() {
    let dir = TempDir::new("http-allowlist");
    let config = write_config(
        &dir,
        json!({"alpha": fixture_entry(&[]), "beta": fixture_entry(&[])}),
    );
    let auth = write_auth_file(
        &dir,
        &[("narrow", "tn", Some(&["alpha"])), ("wide", "tw", None)],
    );
    let server = HttpServer::start(&[
        "--config",
        mcpk_tests::upstream::utf8(&config),
        "--auth-file",
        mcpk_tests::upstream::utf8(&auth),
    ])
    .await;
    let narrow = server.client(Some("tn")).await;
    let wide = server.client(Some("tw")).await;
    let names = "return Object.keys(servers)";
    assert_eq!(wide.execute(names).await.value(), &json!(["alpha", "beta"]));
    assert_eq!(narrow.execute(names).await.value(), &json!(["alpha"]));
    let echo = "return (await servers.alpha.echo({value: 1})).value";
    assert_eq!(narrow.execute(echo).await.value(), 1);
    let refused = narrow
        .execute("return await servers.beta.echo({value: 1})")
        .await;
    assert!(refused.is_error(), "{}", refused.text());
    refused.assert_message_contains(&["unknown server `beta`", "configured servers: alpha"]);
    assert!(
        !refused.error_message().contains("beta;"),
        "{}",
        refused.error_message()
    );
    let found = narrow
        .call("search_tools", json!({"query": "echo"}), None)
        .await
        .expect("search_tools");
    let text = found.text();
    assert!(
        text.contains("servers.alpha.echo") && !text.contains("servers.beta"),
        "{text}"
    );
    let listed = narrow
        .execute("return (await mcp.tools.list()).map(t => t.server)")
        .await;
    assert!(
        listed
            .value()
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == "alpha"),
        "{}",
        listed.text()
    );
    let resources = narrow
        .service
        .peer()
        .list_all_resources()
        .await
        .expect("resources/list");
    assert!(
        resources.iter().all(|r| !r.uri.starts_with("tool://beta/")),
        "{:?}",
        resources.iter().map(|r| r.uri.as_str()).collect::<Vec<_>>()
    );
}

/// Runs `mcp-kernel serve` with `args` and returns its exit status and stderr.
async fn refused_start(args: &[&str]) -> (std::process::ExitStatus, String) {
    let output = tokio::time::timeout(
        mcpk_tests::REQUEST_DEADLINE,
        tokio::process::Command::new(mcpk_tests::binary_path())
            .arg("serve")
            .args(args)
            .env_remove("REDIS_URL")
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("exits")
    .expect("runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn unsafe_or_invalid_http_setups_refuse_to_start_and_say_why() {
    let dir = TempDir::new("http-refused");
    let (status, stderr) = refused_start(&["--http", "0.0.0.0:0"]).await;
    assert!(!status.success());
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--auth-file"),
        "{stderr}"
    );
    let bad = dir.write(
        "bad-auth.json",
        br#"{"tenants": {"a": {"tokens_sha256": ["plain-token"]}}}"#,
    );
    let (status, stderr) = refused_start(&[
        "--http",
        "127.0.0.1:0",
        "--auth-file",
        mcpk_tests::upstream::utf8(&bad),
    ])
    .await;
    assert!(!status.success());
    assert!(
        stderr.contains("bad-auth.json") && stderr.contains("tenants.a.tokens_sha256[0]"),
        "{stderr}"
    );
    let auth = write_auth_file(&dir, &[("a", "t", Some(&["nowhere"]))]);
    let (status, stderr) = refused_start(&[
        "--http",
        "127.0.0.1:0",
        "--auth-file",
        mcpk_tests::upstream::utf8(&auth),
    ])
    .await;
    assert!(!status.success());
    assert!(
        stderr.contains("tenants.a.servers names `nowhere`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn foreign_hosts_and_origins_oversized_bodies_are_refused() {
    let server = HttpServer::start(&["--max-request-body-bytes", "4096"]).await;
    let http = reqwest::Client::new();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let send = |headers: &[(&str, &str)], body: Vec<u8>| {
        let mut request = http
            .post(server.url())
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let cases = [
        (&[][..], 200, "a plain request"),
        (
            &[("Host", "evil.example:80")][..],
            403,
            "a foreign Host (DNS rebinding)",
        ),
        (
            &[("Origin", "http://evil.example")][..],
            403,
            "a foreign browser Origin",
        ),
        (
            &[("Origin", "http://localhost:3000")][..],
            200,
            "a loopback Origin",
        ),
    ];
    for (headers, status, what) in cases {
        let response = send(headers, body.to_string().into_bytes())
            .await
            .expect("HTTP");
        assert_eq!(response.status(), status, "{what}");
    }
    // At the limit a body is read; one byte over it is refused.
    let mut padded = body.clone();
    let pad = 4096 - body.to_string().len() - r#","pad":"""#.len();
    padded["pad"] = json!("x".repeat(pad));
    let at_limit = padded.to_string().into_bytes();
    assert_eq!(at_limit.len(), 4096);
    assert_eq!(send(&[], at_limit).await.expect("HTTP").status(), 200);
    padded["pad"] = json!("x".repeat(pad + 1));
    let over = send(&[], padded.to_string().into_bytes())
        .await
        .expect("HTTP");
    assert_eq!(over.status(), 413);
}

/// Runs `code` with progress token `token`, then collects its progress notifications until
/// `complete` says they are all there. rmcp hands each notification to the client handler in
/// a task of its own, so some may be delivered just after the result.
async fn progress_of(
    client: &mut HttpClient,
    code: &str,
    token: &str,
    complete: impl Fn(&[rmcp::model::ProgressNotificationParam]) -> bool,
) -> (
    rmcp::model::CallToolResult,
    Vec<rmcp::model::ProgressNotificationParam>,
) {
    let result = client
        .call("execute", json!({"code": code}), Some(token))
        .await
        .expect("execute");
    let mut notes = Vec::new();
    while !complete(&notes) {
        match tokio::time::timeout(mcpk_tests::REQUEST_DEADLINE, client.progress.recv()).await {
            Ok(Some(note)) => notes.push(note),
            _ => panic!("the notifications stopped short: {notes:?}\nresult: {result:?}"),
        }
    }
    (result, notes)
}

fn messages(notes: &[rmcp::model::ProgressNotificationParam]) -> String {
    notes
        .iter()
        .filter_map(|n| n.message.as_deref())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines the notifications carry: shown ones, plus those counted as `… N more lines`.
fn lines_carried(notes: &[rmcp::model::ProgressNotificationParam]) -> usize {
    notes
        .iter()
        .filter_map(|n| n.message.as_deref())
        .map(|m| {
            m.lines()
                .map(|line| {
                    line.strip_prefix("… ")
                        .and_then(|rest| rest.split(' ').next())
                        .and_then(|n| n.parse::<usize>().ok())
                        .unwrap_or(1)
                })
                .sum::<usize>()
        })
        .sum()
}

fn assert_increasing(notes: &[rmcp::model::ProgressNotificationParam]) {
    for pair in notes.windows(2) {
        assert!(pair[1].progress > pair[0].progress, "{notes:?}");
    }
    assert!(notes.iter().all(|n| n.total == Some(100.0)), "{notes:?}");
}

#[tokio::test]
async fn console_lines_and_mcp_progress_arrive_as_progress_notifications_before_the_result() {
    let server = HttpServer::start(&[]).await;
    let mut client = server.client(None).await;
    let needles = ["reading", "half way", "warn: slow part"];
    let (result, notes) = progress_of(
        &mut client,
        "console.log('reading'); mcp.progress(0.5, 'half way'); console.warn('slow part'); mcp.progress(1); return 'done'",
        "job-1",
        |notes| {
            let text = messages(notes);
            needles.iter().all(|n| text.contains(n)) && notes.last().is_some_and(|n| n.progress == 100.0)
        },
    )
    .await;
    assert_eq!(result.value(), "done");
    assert_increasing(&notes);
    // Bad arguments are a TypeError naming the argument.
    let bad = client.execute("mcp.progress(2)").await;
    bad.assert_message_contains(&[
        "mcp.progress",
        "`fraction` must be a number from 0 to 1, got 2",
    ]);
}

#[tokio::test]
async fn a_flood_of_console_lines_is_merged_into_few_notifications_and_none_is_unaccounted() {
    let server = HttpServer::start(&[]).await;
    let mut client = server.client(None).await;
    let (result, notes) = progress_of(
        &mut client,
        "for (let i = 0; i < 3000; i++) console.log(i % 10); return 'logged'",
        "flood",
        |notes| lines_carried(notes) >= 3000,
    )
    .await;
    assert_eq!(result.value(), "logged");
    assert_increasing(&notes);
    // Merged (at most one notification per 100 ms), yet every line is shown or counted.
    assert!(notes.len() < 3000, "{} notifications", notes.len());
    assert_eq!(lines_carried(&notes), 3000, "{notes:?}");
}

#[tokio::test]
async fn progress_notifications_work_over_stdio_too() {
    let mut command = tokio::process::Command::new(mcpk_tests::binary_path());
    command
        .arg("serve")
        .env_remove("REDIS_URL")
        .kill_on_drop(true);
    let transport = rmcp::transport::TokioChildProcess::new(command).expect("spawn");
    let (recorder, mut progress) = mcpk_tests::http::Recorder::new();
    let client = rmcp::ServiceExt::serve(recorder, transport)
        .await
        .expect("initialize");
    let mut params = rmcp::model::CallToolRequestParams::new("execute").with_arguments(
        json!({"code": "mcp.progress(0.25, 'quarter'); return 'ok'"})
            .as_object()
            .cloned()
            .unwrap(),
    );
    params.meta = Some(rmcp::model::RequestMetaObject::with_progress_token(
        rmcp::model::ProgressToken(rmcp::model::NumberOrString::Number(7)),
    ));
    let result = client.peer().call_tool(params).await.expect("execute");
    assert_eq!(result.value(), "ok");
    let note = tokio::time::timeout(mcpk_tests::REQUEST_DEADLINE, progress.recv())
        .await
        .expect("a progress notification")
        .expect("open");
    // (rmcp's client puts a token of its own on every request.)
    assert_eq!(
        (note.progress, note.message.as_deref()),
        (25.0, Some("quarter"))
    );
}

#[tokio::test]
async fn only_a_request_with_a_progress_token_gets_notifications_on_the_wire() {
    let server = HttpServer::start(&[]).await;
    let raw = server.raw_session(None).await;
    let code = "console.log('working'); mcp.progress(0.5, 'marker'); return 'ok'";
    let quiet = raw
        .post(
            None,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "execute", "arguments": {"code": code}}}),
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(
        quiet.contains("\"ok\"") && !quiet.contains("notifications/progress"),
        "{quiet}"
    );
    let loud = raw
        .post(None, json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "execute", "arguments": {"code": code, "cache": "off"}, "_meta": {"progressToken": "p-1"}}}))
        .await
        .text()
    .await
    .expect("body");
    // (Without `cache: "off"` the same code is answered from the cache, with no progress.)
    // Notifications come first on the request's SSE stream, then the result.
    let note = loud
        .find("notifications/progress")
        .unwrap_or_else(|| panic!("{loud}"));
    let result = loud.find("\"result\"").unwrap_or_else(|| panic!("{loud}"));
    assert!(note < result, "{loud}");
    assert!(
        loud.contains("\"progressToken\":\"p-1\"") && loud.contains("marker"),
        "{loud}"
    );
}

/// Whether `error` is the server's 503 (a full `max_concurrent_requests`).
fn is_503(error: &rmcp::ServiceError) -> bool {
    format!("{error:?}").contains("status: 503")
}

/// Sends `send` again while the server answers 503, as a client honouring `Retry-After`
/// would (right away: the place frees as soon as the previous response is fully sent).
async fn retry_503<T, F>(send: impl Fn() -> F) -> Result<T, rmcp::ServiceError>
where
    F: std::future::Future<Output = Result<T, rmcp::ServiceError>>,
{
    tokio::time::timeout(mcpk_tests::REQUEST_DEADLINE, async {
        loop {
            match send().await {
                Err(error) if is_503(&error) => tokio::task::yield_now().await,
                other => return other,
            }
        }
    })
    .await
    .expect("a place came free")
}

#[tokio::test]
async fn a_request_keeps_its_place_under_max_concurrent_requests_until_its_call_has_answered() {
    let dir = TempDir::new("http-limit");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = HttpServer::start(&[
        "--config",
        mcpk_tests::upstream::utf8(&config),
        "--max-concurrent-requests",
        "1",
    ])
    .await;
    let HttpClient {
        service,
        mut progress,
    } = server.client(None).await;
    // The one place is taken by a call that hangs in an upstream until its own deadline.
    let params = rmcp::model::CallToolRequestParams::new("execute").with_arguments(
        json!({"code": "mcp.progress(0.1, 'started'); await servers.fixture.hang({})", "timeout_ms": 8000})
            .as_object()
            .cloned()
            .expect("object"),
    );
    let peer = service.peer().clone();
    let call = tokio::spawn(async move { retry_503(|| peer.call_tool(params.clone())).await });
    tokio::time::timeout(mcpk_tests::REQUEST_DEADLINE, async {
        while progress.recv().await.and_then(|n| n.message).as_deref() != Some("started") {}
    })
    .await
    .expect("the call started");
    let refused = service.peer().list_tools(None).await;
    assert!(
        refused.as_ref().is_err_and(is_503),
        "a second request got in: {refused:?}"
    );
    let timed_out = call.await.expect("the call's task").expect("a tool result");
    assert_eq!(timed_out.error_name(), "TimeoutError");
    // Its answer sent, the place is free again.
    let tools = retry_503(|| service.peer().list_tools(None))
        .await
        .expect("tools/list");
    assert_eq!(tools.tools.len(), 2);
}
