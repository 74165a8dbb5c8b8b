//! The one place where call outcomes become MCP responses.
//!
//! Two kinds of failure, kept apart:
//! - the user's code failed (threw, timed out, ran out of memory, ...) → `Ok` with a
//!   [`CallToolResult`] whose `isError` is true, which the agent reads and can fix;
//! - the protocol or the infrastructure failed (unknown tool, no worker) → `Err(ErrorData)`,
//!   a JSON-RPC error. Bad argument values are tool errors (see `tools`), and so are session
//!   failures the agent can act on (`SessionExpired`, `SessionNotFound`, `SessionBusy`,
//!   `SessionLimitError`, `StoreError`).

use std::fmt::Write as _;
use std::time::Duration;

use mcpk_session::{CallError, CallOutcome, CallValue, LogEntry, LogLevel, SessionError};
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use crate::json_text::replace_lone_surrogate_escapes;

/// What the response needs to know about the call besides its outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallInfo<'a> {
    /// The session the call ran in.
    pub(crate) session: &'a str,
    /// Wall-clock time of the call, as seen by the server.
    pub(crate) duration: Duration,
    /// The configured result limit, reported when a result was truncated.
    pub(crate) max_result_bytes: usize,
    /// The cache tier that answered (`"l1"`, `"l2"`), or `None` when the code ran:
    /// `structuredContent.cached` is the tier or `false`.
    pub(crate) cached: Option<&'static str>,
    /// Estimated tokens of the upstream replies the code read (`_meta.tokens.processed`).
    pub(crate) processed_tokens: usize,
}

/// Maps a finished call to the tool result the agent sees.
///
/// # Errors
/// `internal_error` when the kernel produced result text that is not JSON (a kernel bug).
pub(crate) fn call_result(
    outcome: CallOutcome,
    info: CallInfo<'_>,
) -> Result<CallToolResult, ErrorData> {
    let processed_tokens = info.processed_tokens;
    let logs = logs_json(&outcome.logs);
    let duration_ms = u64::try_from(info.duration.as_millis()).unwrap_or(u64::MAX);
    let mut result = match outcome.result {
        Ok(value) => success(value, &outcome.logs, logs, duration_ms, info)?,
        Err(error) => failure(&error, &outcome.logs, logs, duration_ms, info),
    };
    let returned = crate::tokens::returned(&result);
    let mut meta = rmcp::model::JsonObject::new();
    meta.insert(
        "tokens".into(),
        json!({ "returned": returned, "processed": processed_tokens }),
    );
    result.meta = Some(meta.into());
    Ok(result)
}

fn success(
    value: CallValue,
    log_entries: &[LogEntry],
    logs: Value,
    duration_ms: u64,
    info: CallInfo<'_>,
) -> Result<CallToolResult, ErrorData> {
    let mut text = value.json.clone();
    let mut structured = json!({
        "logs": logs,
        "duration_ms": duration_ms,
        "session": info.session,
        "cached": info.cached.map_or(serde_json::Value::Bool(false), serde_json::Value::from),
    });
    match value.truncated_from_bytes {
        None => {
            let result: Value = serde_json::from_str(&replace_lone_surrogate_escapes(&value.json))
                .map_err(|error| {
                    ErrorData::internal_error(
                        format!("the kernel returned a result that is not JSON: {error}"),
                        None,
                    )
                })?;
            structured["result"] = result;
        }
        Some(total_bytes) => {
            // Cut JSON does not parse: hand the agent the text itself.
            structured["result"] = Value::String(value.json);
            structured["truncated"] = json!({
                "total_bytes": total_bytes,
                "limit_bytes": info.max_result_bytes,
            });
            let _ = write!(
                text,
                "\n[result truncated: {total_bytes} bytes of JSON, limit {} bytes. Filter or \
                 summarise the data in code and return only what you need.]",
                info.max_result_bytes
            );
        }
    }
    push_logs(&mut text, log_entries);
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    Ok(result)
}

fn failure(
    error: &CallError,
    log_entries: &[LogEntry],
    logs: Value,
    duration_ms: u64,
    info: CallInfo<'_>,
) -> CallToolResult {
    let name = error.kind.name();
    let mut text = format!("{name}: {}", error.message);
    if let Some(stack) = error.stack.as_deref().filter(|stack| !stack.is_empty()) {
        text.push('\n');
        text.push_str(stack);
    }
    push_logs(&mut text, log_entries);
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = Some(json!({
        "error": {
            "name": name,
            "message": error.message,
            "stack": error.stack,
        },
        "logs": logs,
        "duration_ms": duration_ms,
        "session": info.session,
        "cached": info.cached.map_or(serde_json::Value::Bool(false), serde_json::Value::from),
    }));
    result
}

/// Maps a session failure: one the agent can act on becomes a tool error named by
/// [`SessionError::name`] (`structuredContent.error {name, message}`); a kernel failure (no
/// worker could start) a JSON-RPC internal error (-32603) with its causes.
///
/// # Errors
/// The JSON-RPC error for [`SessionError::Kernel`].
pub(crate) fn session_error(
    error: &SessionError,
    session: &str,
) -> Result<CallToolResult, ErrorData> {
    if !matches!(error, SessionError::Kernel(_)) {
        let name = error.name();
        let message = error.to_string();
        let mut result =
            CallToolResult::error(vec![ContentBlock::text(format!("{name}: {message}"))]);
        result.structured_content = Some(json!({
            "error": {"name": name, "message": message, "stack": null},
            "logs": [],
            "session": session,
        }));
        return Ok(result);
    }
    Err(internal_error(error))
}

fn internal_error(error: &SessionError) -> ErrorData {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    ErrorData::internal_error(message, None)
}

/// Maps a call to a tool this server does not have (-32602, as the MCP spec's example).
pub(crate) fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(
        format!("Unknown tool: {name} (this server has two tools, `execute` and `search_tools`)"),
        None,
    )
}

fn logs_json(logs: &[LogEntry]) -> Value {
    serde_json::to_value(logs).unwrap_or_else(|_| Value::Array(Vec::new()))
}

/// Appends the logs, one per line as `[level] message`, after the result or error.
fn push_logs(text: &mut String, logs: &[LogEntry]) {
    for entry in logs {
        let _ = write!(text, "\n[{}] {}", level_name(entry.level), entry.message);
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Log => "log",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
        LogLevel::Debug => "debug",
    }
}

#[cfg(test)]
mod tests {
    use mcpk_session::{ErrorKind, StateAccess};

    use super::*;

    const INFO: CallInfo<'static> = CallInfo {
        session: "default",
        duration: Duration::from_millis(12),
        max_result_bytes: 10,
        cached: None,
        processed_tokens: 0,
    };

    fn text(result: &CallToolResult) -> &str {
        &result.content[0].as_text().unwrap().text
    }

    fn log(level: LogLevel, message: &str) -> LogEntry {
        LogEntry {
            level,
            message: message.into(),
        }
    }

    #[test]
    fn success_keeps_the_exact_json_text_and_parses_the_result() {
        let outcome = CallOutcome {
            result: Ok(CallValue {
                json: r#"{"s":"\ud800😀"}"#.into(),
                truncated_from_bytes: None,
                state_access: StateAccess::default(),
            }),
            logs: vec![log(LogLevel::Log, "hi"), log(LogLevel::Warn, "careful")],
        };
        let result = call_result(outcome, INFO).unwrap();
        assert_eq!(result.is_error, Some(false));
        assert_eq!(
            text(&result),
            "{\"s\":\"\\ud800😀\"}\n[log] hi\n[warn] careful"
        );
        assert_eq!(
            result.structured_content.unwrap(),
            json!({
                "result": {"s": "\u{fffd}😀"},
                "logs": [{"level": "log", "message": "hi"}, {"level": "warn", "message": "careful"}],
                "duration_ms": 12,
                "session": "default",
                "cached": false,
            })
        );
    }

    #[test]
    fn truncated_results_are_text_with_a_note() {
        let outcome = CallOutcome {
            result: Ok(CallValue {
                json: r#"["aaaa","b"#.into(),
                truncated_from_bytes: Some(25),
                state_access: StateAccess::default(),
            }),
            logs: vec![],
        };
        let result = call_result(outcome, INFO).unwrap();
        let structured = result.structured_content.clone().unwrap();
        assert_eq!(structured["result"], r#"["aaaa","b"#);
        assert_eq!(
            structured["truncated"],
            json!({"total_bytes": 25, "limit_bytes": 10})
        );
        assert!(text(&result).starts_with(r#"["aaaa","b"#));
        assert!(text(&result).contains("Filter or summarise the data in code"));
    }

    #[test]
    fn failures_are_tool_errors_with_name_message_stack_and_logs() {
        let outcome = CallOutcome {
            result: Err(CallError {
                kind: ErrorKind::Js("TypeError".into()),
                message: "x is not a function; mcp.state was rolled back".into(),
                stack: Some("at <main>:1:1".into()),
            }),
            logs: vec![log(LogLevel::Error, "before")],
        };
        let result = call_result(outcome, INFO).unwrap();
        assert_eq!(result.is_error, Some(true));
        assert_eq!(
            text(&result),
            "TypeError: x is not a function; mcp.state was rolled back\nat <main>:1:1\n[error] before"
        );
        let structured = result.structured_content.unwrap();
        assert_eq!(structured["error"]["name"], "TypeError");
        assert_eq!(structured["error"]["stack"], "at <main>:1:1");
        assert_eq!(structured["logs"][0]["message"], "before");

        let outcome = CallOutcome {
            result: Err(CallError {
                kind: ErrorKind::Timeout,
                message: "timed out".into(),
                stack: None,
            }),
            logs: vec![],
        };
        let result = call_result(outcome, INFO).unwrap();
        assert_eq!(text(&result), "TimeoutError: timed out");
        assert_eq!(
            result.structured_content.unwrap()["error"],
            json!({"name": "TimeoutError", "message": "timed out", "stack": null})
        );
    }

    #[test]
    fn result_text_that_is_not_json_is_an_internal_error() {
        let outcome = CallOutcome {
            result: Ok(CallValue {
                json: "{".into(),
                truncated_from_bytes: None,
                state_access: StateAccess::default(),
            }),
            logs: vec![],
        };
        let error = call_result(outcome, INFO).unwrap_err();
        assert_eq!(error.code, rmcp::model::ErrorCode::INTERNAL_ERROR);
    }
}
