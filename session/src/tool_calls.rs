//! The upstream tool calls one `execute` call made, for the audit log: server, tool and the
//! SHA-256 of the canonical JSON of the arguments, never the arguments themselves.
//!
//! The [`Router`](crate::router) records every `HostOp::CallTool` as it is dispatched (so a
//! call that failed, or was refused by the upstream, is listed too), in dispatch order. The
//! list is bounded: the first [`MAX_LISTED_TOOL_CALLS`] calls are listed, the rest counted.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Tool calls listed per `execute` call; later calls are only counted
/// ([`ToolCalls::unlisted`]).
pub const MAX_LISTED_TOOL_CALLS: usize = 256;

/// Bytes of a server or tool name kept in a [`ToolCall`]; a longer name (only code calling
/// a tool that does not exist can send one) is cut at a character boundary.
pub const MAX_TOOL_NAME_BYTES: usize = 128;

/// One upstream tool call made by agent code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The upstream server name, as the code wrote it (at most [`MAX_TOOL_NAME_BYTES`]).
    pub server: String,
    /// The tool name, as the code wrote it (at most [`MAX_TOOL_NAME_BYTES`]).
    pub tool: String,
    /// Lowercase hex SHA-256 of the arguments' canonical JSON ([`canonical_json`]).
    pub args_sha256: String,
}

/// The upstream tool calls of one `execute` call: the first [`MAX_LISTED_TOOL_CALLS`] in
/// dispatch order, and how many more there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCalls {
    /// The calls, in the order the code made them.
    pub listed: Vec<ToolCall>,
    /// Calls made after the list was full.
    pub unlisted: u64,
}

impl ToolCalls {
    /// Records a call of `server.tool` with `args`, or only counts it when the list is full.
    pub(crate) fn push(&mut self, server: &str, tool: &str, args: &Value) {
        if self.listed.len() >= MAX_LISTED_TOOL_CALLS {
            self.unlisted += 1;
            return;
        }
        self.listed.push(ToolCall {
            server: cut(server, MAX_TOOL_NAME_BYTES).to_owned(),
            tool: cut(tool, MAX_TOOL_NAME_BYTES).to_owned(),
            args_sha256: sha256_hex(&canonical_json(args)),
        });
    }
}

/// `value` as canonical JSON text: compact (no whitespace), object members sorted by key
/// (by the bytes of their UTF-8, which is Unicode code point order), arrays in order,
/// strings and numbers as serde_json writes them. Equal values in any key order give equal
/// bytes, so their hashes match.
#[must_use]
pub fn canonical_json(value: &Value) -> Vec<u8> {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

/// Lowercase hex SHA-256 of `bytes` (64 characters).
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(bytes) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character
/// boundary.
fn cut(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_has_no_whitespace() {
        let a = json!({"b": 1, "a": [{"z": null, "y": "é"}, 2.5], "ä": true});
        let b = json!({"ä": true, "a": [{"y": "é", "z": null}, 2.5], "b": 1});
        let text = String::from_utf8(canonical_json(&a)).unwrap();
        assert_eq!(text, r#"{"a":[{"y":"é","z":null},2.5],"b":1,"ä":true}"#);
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            sha256_hex(&canonical_json(&a)),
            sha256_hex(&canonical_json(&b))
        );
    }

    #[test]
    fn array_order_and_values_change_the_hash() {
        let hash = |v: Value| sha256_hex(&canonical_json(&v));
        assert_ne!(hash(json!([1, 2])), hash(json!([2, 1])));
        assert_ne!(hash(json!({"a": 1})), hash(json!({"a": "1"})));
        // The empty object's hash, as `sha256sum` gives it for the two bytes `{}`.
        assert_eq!(
            hash(json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn the_list_is_bounded_and_counts_the_rest() {
        let mut calls = ToolCalls::default();
        for _ in 0..MAX_LISTED_TOOL_CALLS + 3 {
            calls.push("fs", "read", &json!({}));
        }
        assert_eq!(calls.listed.len(), MAX_LISTED_TOOL_CALLS);
        assert_eq!(calls.unlisted, 3);
        let mut long = ToolCalls::default();
        long.push(&"é".repeat(100), "t", &Value::Null);
        assert_eq!(long.listed[0].server.len(), 128);
    }
}
