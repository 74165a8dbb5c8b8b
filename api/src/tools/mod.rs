//! The MCP tools mcp-kernel serves, side by side: `execute` (run JavaScript in a session's
//! kernel) and `search_tools` (ranked search of the upstream tools and saved skills), with
//! what their argument parsing shares.
//!
//! Bad argument values are tool execution errors (`isError: true`, MCP 2025-11-25, SEP-1303),
//! so the model sees them and corrects its call; messages name the tool and the field, and
//! echo at most [`MAX_ECHO_CHARS`] characters of a rejected value.

pub(crate) mod execute;
pub(crate) mod search_tools;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

/// The most characters of a rejected value (or unknown field name) an error message echoes.
pub(crate) const MAX_ECHO_CHARS: usize = 40;

/// A rejected argument: a tool execution error whose message names the tool, the field and
/// the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ArgumentError(pub(crate) String);

impl ArgumentError {
    /// `"<tool>: <problem>"`, from a serde rejection of the arguments of `tool`. serde's own
    /// words for a missing or unknown field are kept, with an unknown name cut short.
    pub(crate) fn from_serde(tool: &str, error: &serde_json::Error) -> Self {
        let message = error.to_string();
        let message = if let Some(field) = message.strip_prefix("missing field ") {
            format!("missing required field {field}")
        } else if let Some(rest) = message.strip_prefix("unknown field `")
            && let Some((name, expected)) = rest.split_once("`, expected ")
        {
            format!("unknown field `{}`, expected {expected}", shorten(name))
        } else {
            message
        };
        Self(format!("{tool}: {message}"))
    }

    /// The tool result the agent sees: `isError: true`, the message as text, and
    /// `structuredContent.error {name: "ArgumentError", message}` like other failed calls.
    pub(crate) fn into_result(self) -> CallToolResult {
        let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
            "ArgumentError: {}",
            self.0
        ))]);
        result.structured_content = Some(json!({
            "error": {"name": "ArgumentError", "message": self.0, "stack": null},
        }));
        result
    }
}

/// The offending value as JSON, cut short so a huge argument does not flood the error.
pub(crate) fn describe(value: &Value) -> String {
    shorten(&value.to_string())
}

/// `text` cut to [`MAX_ECHO_CHARS`] characters, with `…` when cut.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}
