//! `mcpk-fixture`: a small upstream MCP server (stdio) for the integration tests, covering
//! cases the npm reference servers cannot produce on demand: a server that crashes or hangs
//! mid-call, image and audio content, structured output, slow calls, a tool list that
//! changes, and a server that exits on its own.
//!
//! ```text
//! mcpk-fixture [--name NAME] [--exit-after-ms N] [--tools-changed-after-ms N]
//!              [--start-after-file PATH] [--linger] [--tool-pages N]
//! ```
//!
//! - `--name NAME`: the server name sent in `initialize` (default `fixture`).
//! - `--exit-after-ms N`: exit with status 0 N ms after start, whatever is in flight.
//! - `--tools-changed-after-ms N`: N ms after the client's `initialized` notification, add
//!   the tool `late` and send `notifications/tools/list_changed`.
//! - `--start-after-file PATH`: read nothing from stdin (so the client's `initialize` stays
//!   unanswered) until PATH exists: a server that is still starting for exactly as long as a
//!   test wants.
//!
//! - `--linger`: keep running after stdin closes (until killed), as a server that ignores end
//!   of input would.
//!
//! - `--tool-pages N`: serve `tools/list` in N pages (the tools on the first, then empty pages
//!   linked by cursors), for the client's paging cap.
//!
//! Tools: `echo`, `crash`, `hang`, `cancellations`, `fail`, `image`, `audio`, `structured`,
//! `slow`, `rendezvous`, `env`, `stderr_flood`, `pid`, `big`, `hang_tools_list`, `grow_echo`
//! (and `late`).
//! Resource: `fixture://readme`.
//!
//! Stdout carries only the MCP stream; diagnostics go to stderr.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;

/// A 1×1 red RGBA PNG (70 bytes), base64.
const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP4z8DwHwAFAAH/VscvDQAAAABJRU5ErkJggg==";

/// A WAV file of eight 8-bit mono samples at 8 kHz (52 bytes), base64.
const WAV_BASE64: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAoIBggKCAYA==";

const README_URI: &str = "fixture://readme";
const README_TEXT: &str = "fixture readme";

/// `slow` sleeps this long when `ms` is not given.
const SLOW_DEFAULT_MS: u64 = 300;

/// Exit status of the `crash` tool, so tests can tell it from other exits.
const CRASH_EXIT_CODE: i32 = 3;

#[derive(Debug)]
struct Options {
    name: String,
    exit_after: Option<Duration>,
    tools_changed_after: Option<Duration>,
    start_after_file: Option<std::path::PathBuf>,
    linger: bool,
    tool_pages: Option<u64>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Self {
            name: "fixture".to_owned(),
            exit_after: None,
            tools_changed_after: None,
            start_after_file: None,
            linger: false,
            tool_pages: None,
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--name" => options.name = value()?,
                "--exit-after-ms" => options.exit_after = Some(parse_ms(&flag, &value()?)?),
                "--tools-changed-after-ms" => {
                    options.tools_changed_after = Some(parse_ms(&flag, &value()?)?);
                }
                "--start-after-file" => options.start_after_file = Some(value()?.into()),
                "--linger" => options.linger = true,
                "--tool-pages" => {
                    let pages = value()?;
                    options.tool_pages = Some(pages.parse().map_err(|_| {
                        format!("--tool-pages takes a whole number, not {pages:?}")
                    })?);
                }
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        Ok(options)
    }
}

fn parse_ms(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("{flag} takes a whole number of milliseconds, not {value:?}"))
}

#[derive(Debug, Clone)]
struct Fixture {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    /// Tool calls (`hang`, `slow`) that observed `notifications/cancelled`.
    cancellations: AtomicU64,
    /// `hang` calls currently waiting.
    hanging: AtomicU64,
    /// Whether `late` has been added.
    late: AtomicBool,
    /// `grow_echo` was called: `echo` lists its grown schema.
    echo_grown: AtomicBool,
    /// Set by `hang_tools_list`: every later `tools/list` never answers.
    hang_tools_list: AtomicBool,
    /// `--tool-pages`.
    tool_pages: Option<u64>,
    /// Becomes true when stdin reaches end of file.
    stdin_closed: watch::Receiver<bool>,
    /// `rendezvous` arrivals so far, by key.
    rendezvous: std::sync::Mutex<std::collections::HashMap<String, watch::Sender<u64>>>,
}

/// Stdin that reports its end of file, so `hang` and `slow` can give up then. Otherwise rmcp, which
/// waits up to 5 s for in-flight handlers after the input closes, would keep the process
/// alive that long after a client that closed stdin with such a call pending.
struct ReportEof<R> {
    inner: R,
    closed: watch::Sender<bool>,
}

impl<R: AsyncRead + Unpin> AsyncRead for ReportEof<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(())))
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            self.closed.send_replace(true);
        }
        poll
    }
}

/// Counts a `hang` call as waiting while it lives.
struct Hanging<'a>(&'a AtomicU64);

impl<'a> Hanging<'a> {
    fn start(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for Hanging<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("schemas are written as JSON objects"),
    }
}

/// An input schema for an object with these properties and nothing else.
fn closed_schema(properties: Value, required: &[&str]) -> JsonObject {
    let mut schema = object(json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    }));
    if !required.is_empty() {
        schema.insert("required".to_owned(), json!(required));
    }
    schema
}

fn read_only() -> ToolAnnotations {
    ToolAnnotations::new().read_only(true)
}

fn not_destructive() -> ToolAnnotations {
    ToolAnnotations::new().destructive(false)
}

fn base_tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "echo",
            "Returns its arguments as JSON text (no structured content).",
            closed_schema(
                json!({"value": {"description": "Any JSON value, echoed back"}}),
                &[],
            ),
        )
        .with_annotations(read_only()),
        Tool::new(
            "crash",
            "Exits the server process (status 3) without replying.",
            closed_schema(json!({}), &[]),
        )
        .with_annotations(not_destructive()),
        Tool::new(
            "hang",
            "Never replies; counts the call in `cancellations` when the client cancels it.",
            closed_schema(json!({}), &[]),
        )
        .with_annotations(not_destructive()),
        Tool::new(
            "cancellations",
            "Returns {\"count\": calls that saw notifications/cancelled, \"hanging\": hang \
             calls now waiting} as JSON text.",
            closed_schema(json!({}), &[]),
        )
        .with_annotations(read_only()),
        Tool::new(
            "fail",
            "Returns a tool error (isError: true) with the message text.",
            closed_schema(
                json!({"message": {"type": "string", "description": "Defaults to \"fixture failure\""}}),
                &[],
            ),
        ),
        Tool::new(
            "image",
            "Returns a 1x1 PNG image block and a text block.",
            closed_schema(json!({}), &[]),
        )
        .with_annotations(read_only()),
        Tool::new(
            "audio",
            "Returns a tiny WAV audio block.",
            closed_schema(json!({}), &[]),
        )
        .with_annotations(read_only()),
        Tool::new(
            "structured",
            "Returns structuredContent {n, doubled: 2n} and the same as JSON text.",
            closed_schema(json!({"n": {"type": "integer"}}), &["n"]),
        )
        .with_raw_output_schema(Arc::new(closed_schema(
            json!({"n": {"type": "integer"}, "doubled": {"type": "integer"}}),
            &["n", "doubled"],
        )))
        .with_annotations(read_only()),
        Tool::new(
            "slow",
            "Sleeps `ms` milliseconds (default 300), then returns {\"slept_ms\": ms} as JSON \
             text.",
            closed_schema(
                json!({"ms": {"type": "integer", "minimum": 0, "description": "Default 300"}}),
                &[],
            ),
        )
        .with_annotations(read_only()),
        Tool::new(
            "rendezvous",
            "Waits until `n` calls with the same `key` have arrived (counting this one), then \
             returns {\"met\": n} as JSON text: replies only if the calls overlap.",
            closed_schema(
                json!({"key": {"type": "string"}, "n": {"type": "integer", "minimum": 1}}),
                &["key", "n"],
            ),
        )
        .with_annotations(read_only()),
        Tool::new(
            "env",
            "Returns this process's environment as a JSON object (text).",
            closed_schema(json!({}), &[]),
        )
        .with_annotations(read_only()),
        Tool::new(
            "stderr_flood",
            "Writes `bytes` bytes of 'x' to stderr with no newline, then returns \
             {\"written\": bytes} as JSON text.",
            closed_schema(
                json!({"bytes": {"type": "integer", "minimum": 0}}),
                &["bytes"],
            ),
        )
        .with_annotations(not_destructive()),
        Tool::new(
            "pid",
            "Returns {\"pid\": the server's process id} as JSON text.",
            closed_schema(json!({}), &[]),
        )
        .with_annotations(read_only()),
        Tool::new(
            "big",
            "Returns one text block of `bytes` letters x.",
            closed_schema(
                json!({"bytes": {"type": "integer", "minimum": 0}}),
                &["bytes"],
            ),
        )
        .with_annotations(read_only()),
        Tool::new(
            "hang_tools_list",
            "Makes every later tools/list hang, then sends notifications/tools/list_changed.",
            closed_schema(json!({}), &[]),
        )
        .with_annotations(not_destructive()),
        Tool::new(
            "grow_echo",
            "Adds the optional boolean property `loud` to `echo`'s input schema, then sends \
             notifications/tools/list_changed.",
            closed_schema(json!({}), &[]),
        )
        .with_annotations(not_destructive()),
    ]
}

/// `echo` as it is listed after `grow_echo`: one more optional property.
fn grown_echo() -> Tool {
    Tool::new(
        "echo",
        "Returns its arguments as JSON text (no structured content).",
        closed_schema(
            json!({
                "value": {"description": "Any JSON value, echoed back"},
                "loud": {"type": "boolean", "description": "Ignored"},
            }),
            &[],
        ),
    )
    .with_annotations(read_only())
}

fn late_tool() -> Tool {
    Tool::new(
        "late",
        "Added by --tools-changed-after-ms; returns the text \"late\".",
        closed_schema(json!({}), &[]),
    )
    .with_annotations(read_only())
}

fn json_text(value: &Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value.to_string())])
}

/// Reads an optional non-negative integer argument.
fn u64_arg(args: &JsonObject, key: &str) -> Result<Option<u64>, ErrorData> {
    match args.get(key) {
        None => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            ErrorData::invalid_params(format!("`{key}` must be a non-negative integer"), None)
        }),
    }
}

impl Fixture {
    fn new(name: String, stdin_closed: watch::Receiver<bool>, tool_pages: Option<u64>) -> Self {
        Self {
            inner: Arc::new(Inner {
                name,
                hang_tools_list: AtomicBool::new(false),
                tool_pages,
                cancellations: AtomicU64::new(0),
                hanging: AtomicU64::new(0),
                late: AtomicBool::new(false),
                echo_grown: AtomicBool::new(false),
                stdin_closed,
                rendezvous: std::sync::Mutex::default(),
            }),
        }
    }

    fn tools(&self) -> Vec<Tool> {
        let mut tools = base_tools();
        if self.inner.echo_grown.load(Ordering::SeqCst) {
            tools[0] = grown_echo();
        }
        if self.inner.late.load(Ordering::SeqCst) {
            tools.push(late_tool());
        }
        tools
    }

    /// Resolves once stdin has reached end of file.
    async fn stdin_closed(&self) {
        let mut closed = self.inner.stdin_closed.clone();
        // An error means the sender (the stdin reader) is gone: stdin is closed all the same.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    fn count_cancellation(&self, tool: &str) {
        let count = self.inner.cancellations.fetch_add(1, Ordering::SeqCst) + 1;
        eprintln!("mcpk-fixture: {tool} cancelled by the client ({count} so far)");
    }

    async fn call(
        &self,
        name: &str,
        args: &JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        match name {
            "echo" => Ok(json_text(&Value::Object(args.clone()))),
            "crash" => {
                eprintln!("mcpk-fixture: crash called, exiting with status {CRASH_EXIT_CODE}");
                std::process::exit(CRASH_EXIT_CODE)
            }
            "hang" => {
                let _hanging = Hanging::start(&self.inner.hanging);
                tokio::select! {
                    () = context.ct.cancelled() => {
                        self.count_cancellation("hang");
                        // rmcp drops the response to a cancelled request; this is never sent.
                        Err(ErrorData::internal_error("hang was cancelled", None))
                    }
                    () = self.stdin_closed() => {
                        Err(ErrorData::internal_error("stdin closed while hanging", None))
                    }
                }
            }
            "rendezvous" => {
                let n = u64_arg(args, "n")?.unwrap_or(1);
                let key = args.get("key").and_then(Value::as_str).unwrap_or_default();
                let mut arrived = {
                    let mut all = self
                        .inner
                        .rendezvous
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    let sender = all
                        .entry(key.to_owned())
                        .or_insert_with(|| watch::channel(0).0);
                    sender.send_modify(|count| *count += 1);
                    sender.subscribe()
                };
                tokio::select! {
                    _ = arrived.wait_for(|count| *count >= n) => Ok(json_text(&json!({"met": n}))),
                    () = context.ct.cancelled() => {
                        self.count_cancellation("rendezvous");
                        Err(ErrorData::internal_error("rendezvous was cancelled", None))
                    }
                    () = self.stdin_closed() => {
                        Err(ErrorData::internal_error("stdin closed while waiting", None))
                    }
                }
            }
            "cancellations" => Ok(json_text(&json!({
                "count": self.inner.cancellations.load(Ordering::SeqCst),
                "hanging": self.inner.hanging.load(Ordering::SeqCst),
            }))),
            "fail" => {
                let message = match args.get("message") {
                    None => "fixture failure",
                    Some(Value::String(message)) => message,
                    Some(_) => {
                        return Err(ErrorData::invalid_params(
                            "`message` must be a string",
                            None,
                        ));
                    }
                };
                Ok(CallToolResult::error(vec![ContentBlock::text(message)]))
            }
            "image" => Ok(CallToolResult::success(vec![
                ContentBlock::image(PNG_BASE64, "image/png"),
                ContentBlock::text("a 1x1 red PNG"),
            ])),
            "audio" => Ok(CallToolResult::success(vec![ContentBlock::audio(
                WAV_BASE64,
                "audio/wav",
            )])),
            "structured" => {
                let n = args
                    .get("n")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| ErrorData::invalid_params("`n` must be an integer", None))?;
                let doubled = n
                    .checked_mul(2)
                    .ok_or_else(|| ErrorData::invalid_params("`n` is too large to double", None))?;
                Ok(CallToolResult::structured(
                    json!({"n": n, "doubled": doubled}),
                ))
            }
            "slow" => {
                let ms = u64_arg(args, "ms")?.unwrap_or(SLOW_DEFAULT_MS);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {
                        Ok(json_text(&json!({"slept_ms": ms})))
                    }
                    () = context.ct.cancelled() => {
                        self.count_cancellation("slow");
                        Err(ErrorData::internal_error("slow was cancelled", None))
                    }
                    () = self.stdin_closed() => {
                        Err(ErrorData::internal_error("stdin closed while sleeping", None))
                    }
                }
            }
            "env" => Ok(json_text(&Value::Object(
                std::env::vars_os()
                    .map(|(k, v)| {
                        (
                            k.to_string_lossy().into_owned(),
                            Value::String(v.to_string_lossy().into_owned()),
                        )
                    })
                    .collect(),
            ))),
            "stderr_flood" => {
                use std::io::Write as _;
                let bytes = u64_arg(args, "bytes")?.unwrap_or_default();
                let chunk = vec![b'x'; 1 << 20];
                let mut left = bytes;
                let mut stderr = std::io::stderr().lock();
                while left > 0 {
                    let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
                    stderr
                        .write_all(&chunk[..n])
                        .map_err(|e| ErrorData::internal_error(format!("stderr: {e}"), None))?;
                    left -= n as u64;
                }
                Ok(json_text(&json!({"written": bytes})))
            }
            "pid" => Ok(json_text(&json!({"pid": std::process::id()}))),
            "big" => {
                let bytes = u64_arg(args, "bytes")?.unwrap_or_default();
                let bytes = usize::try_from(bytes)
                    .map_err(|_| ErrorData::invalid_params("`bytes` is too large", None))?;
                Ok(CallToolResult::success(vec![ContentBlock::text(
                    "x".repeat(bytes),
                )]))
            }
            "grow_echo" => {
                self.inner.echo_grown.store(true, Ordering::SeqCst);
                if let Err(error) = context.peer.notify_tool_list_changed().await {
                    eprintln!("mcpk-fixture: cannot send tools/list_changed: {error}");
                }
                Ok(json_text(&json!({"grown": true})))
            }
            "hang_tools_list" => {
                self.inner.hang_tools_list.store(true, Ordering::SeqCst);
                eprintln!("mcpk-fixture: tools/list now hangs; sending tools/list_changed");
                if let Err(error) = context.peer.notify_tool_list_changed().await {
                    eprintln!("mcpk-fixture: cannot send tools/list_changed: {error}");
                }
                Ok(json_text(&json!({"hanging": true})))
            }
            "late" if self.inner.late.load(Ordering::SeqCst) => {
                Ok(CallToolResult::success(vec![ContentBlock::text("late")]))
            }
            _ => Err(ErrorData::invalid_params(
                format!("unknown tool {name:?}"),
                None,
            )),
        }
    }
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(
            self.inner.name.clone(),
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        if self.inner.hang_tools_list.load(Ordering::SeqCst) {
            eprintln!("mcpk-fixture: tools/list hanging");
            self.stdin_closed().await;
            return Err(ErrorData::internal_error(
                "stdin closed while hanging",
                None,
            ));
        }
        let Some(pages) = self.inner.tool_pages else {
            return Ok(ListToolsResult::with_all_items(self.tools()));
        };
        let page: u64 = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut result =
            ListToolsResult::with_all_items(if page == 0 { self.tools() } else { Vec::new() });
        if page + 1 < pages {
            result.next_cursor = Some((page + 1).to_string());
        }
        Ok(result)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools().into_iter().find(|tool| tool.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        self.call(&request.name, &args, &context)
            .await
            .map(CallToolResponse::from)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(README_URI, "readme")
                .with_description("A short text resource")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != README_URI {
            return Err(ErrorData::resource_not_found(
                format!("no resource {:?}", request.uri),
                None,
            ));
        }
        Ok(ReadResourceResult::new(vec![ResourceContents::text(README_TEXT, README_URI)]).into())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!(
                "mcpk-fixture: {error}\nusage: mcpk-fixture [--name NAME] [--exit-after-ms N] \
                 [--tools-changed-after-ms N] [--start-after-file PATH] [--linger] \
                 [--tool-pages N]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(after) = options.exit_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            eprintln!("mcpk-fixture: --exit-after-ms elapsed, exiting");
            std::process::exit(0);
        });
    }
    if let Some(path) = &options.start_after_file {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!("mcpk-fixture: {} exists, starting", path.display());
    }
    let (closed, stdin_closed) = watch::channel(false);
    let stdin = ReportEof {
        inner: tokio::io::stdin(),
        closed,
    };
    let fixture = Fixture::new(options.name, stdin_closed, options.tool_pages);
    // Returns once the client has sent `initialize` and `notifications/initialized`.
    let service = match fixture.clone().serve((stdin, tokio::io::stdout())).await {
        Ok(service) => service,
        Err(error) => {
            eprintln!("mcpk-fixture: initialization failed: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(after) = options.tools_changed_after {
        let peer = service.peer().clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            fixture.inner.late.store(true, Ordering::SeqCst);
            eprintln!("mcpk-fixture: added tool `late`");
            if let Err(error) = peer.notify_tool_list_changed().await {
                eprintln!("mcpk-fixture: cannot send tools/list_changed: {error}");
            }
        });
    }
    let stopped = service.waiting().await;
    if options.linger {
        eprintln!("mcpk-fixture: stdin closed; lingering until killed (--linger)");
        std::future::pending::<()>().await;
    }
    match stopped {
        Ok(reason) => {
            eprintln!("mcpk-fixture: stopped ({reason:?})");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("mcpk-fixture: stopped with an error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
