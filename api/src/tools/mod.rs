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

/// Cuts a schemars-derived input schema down to what an agent reads when it writes a call,
/// in place: every token of a tool definition is paid on every request.
///
/// Removed: `$schema` and `title`; `format` (`uint64`), `pattern`, `minLength`, `maxLength`,
/// `minimum` and `maximum` (the limits are in the description where an agent needs them, and
/// every rejection names its field and limit); `null` in an optional field's type (an explicit
/// `null` is still accepted as "not given"). `$ref`s to `$defs` are inlined and `$defs` dropped.
pub(crate) fn compact_schema(schema: &mut rmcp::model::JsonObject) {
    schema.remove("$schema");
    schema.remove("title");
    let defs = schema.remove("$defs").unwrap_or(Value::Null);
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for property in properties.values_mut() {
            compact_property(property, &defs);
        }
    }
}

fn compact_property(property: &mut Value, defs: &Value) {
    let Value::Object(fields) = property else {
        return;
    };
    // `anyOf: [{$ref}, {type: null}]` (an optional enum) becomes the referenced schema.
    if let Some(Value::Array(variants)) = fields.get("anyOf") {
        let mut kept = variants.iter().filter(|v| v["type"] != "null");
        if let (Some(only), None) = (kept.next(), kept.next()) {
            let only = only.clone();
            fields.remove("anyOf");
            if let Value::Object(only) = only {
                fields.extend(only);
            }
        }
    }
    if let Some(Value::String(reference)) = fields.remove("$ref") {
        let name = reference.trim_start_matches("#/$defs/");
        if let Some(Value::Object(def)) = defs.get(name) {
            // The definition's own description documents a Rust type, not the field.
            for (key, value) in def.iter().filter(|(key, _)| *key != "description") {
                fields.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    if let Some(Value::Array(types)) = fields.get("type") {
        let kept: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
        if let [only] = kept.as_slice() {
            let only = (*only).clone();
            fields.insert("type".into(), only);
        }
    }
    if fields.contains_key("enum") {
        fields.remove("type");
    }
    if fields.get("default") == Some(&Value::Null) {
        fields.remove("default");
    }
    if let Some(Value::String(description)) = fields.get_mut("description") {
        *description = description.split_whitespace().collect::<Vec<_>>().join(" ");
        // `description = ""` in a `#[schemars]` attribute: the name and type say it all.
        if description.is_empty() {
            fields.remove("description");
        }
    }
    for noise in [
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "title",
    ] {
        fields.remove(noise);
    }
}
