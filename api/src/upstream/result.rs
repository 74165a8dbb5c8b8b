//! From an upstream `CallToolResult` to the value agent code receives, and argument checks
//! against a tool's input schema.

use rmcp::model::{CallToolResult, Tool};
use serde_json::{Map, Value, json};

/// The value of a successful call (DESIGN.md "The JavaScript contract"):
/// `structuredContent` when present; else, for a single block, the block's value; else an
/// array of the blocks' values. A text block's value is its parsed JSON when the text is JSON,
/// else the text. Images and audio become `{type, mimeType, data}` with the base64 untouched;
/// embedded resources and resource links keep their MCP JSON shape.
pub(crate) fn value_of(result: &CallToolResult) -> Value {
    if let Some(structured) = &result.structured_content {
        return structured.clone();
    }
    let mut items: Vec<Value> = result
        .content
        .iter()
        .map(|block| block_value(serde_json::to_value(block).unwrap_or(Value::Null)))
        .collect();
    match items.len() {
        0 => Value::Null,
        1 => items.pop().unwrap_or(Value::Null),
        _ => Value::Array(items),
    }
}

fn block_value(block: Value) -> Value {
    let kind = block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "text" => {
            let text = block
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let trimmed = text.trim_start();
            let looks_json = trimmed.starts_with(['{', '[', '"'])
                || trimmed == "null"
                || trimmed == "true"
                || trimmed == "false"
                || trimmed.starts_with(|c: char| c == '-' || c.is_ascii_digit());
            looks_json
                .then(|| serde_json::from_str(text).ok())
                .flatten()
                .unwrap_or_else(|| Value::String(text.to_owned()))
        }
        "image" | "audio" => json!({
            "type": kind,
            "mimeType": block.get("mimeType").cloned().unwrap_or(Value::Null),
            "data": block.get("data").cloned().unwrap_or(Value::Null),
        }),
        _ => {
            let mut block = block;
            if let Value::Object(map) = &mut block {
                map.remove("annotations");
                map.remove("_meta");
            }
            block
        }
    }
}

/// The message of an `isError` result: its text blocks joined, or a placeholder.
pub(crate) fn error_message(result: &CallToolResult) -> String {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect();
    if texts.is_empty() {
        "the tool reported an error without a message".to_owned()
    } else {
        texts.join("\n")
    }
}

/// Checks `args` against the tool's input schema (tests; the server caches validators). The error names each failing field (as a
/// JSON pointer-like path) and what was expected, e.g. "`path`: 12 is not of type \"string\"".
#[cfg(test)]
pub(crate) fn check_arguments(tool: &Tool, args: &Map<String, Value>) -> Result<(), String> {
    match compile(tool) {
        Some(validator) => check(&validator, args),
        None => Ok(()),
    }
}

/// The tool's input-schema validator; `None` when the schema does not compile (then the
/// upstream judges the arguments itself). Formats are not validated. Compiling costs more than
/// validating, so callers cache the result per tool (`Upstreams::validator`).
pub(crate) fn compile(tool: &Tool) -> Option<jsonschema::Validator> {
    let schema = Value::Object(tool.input_schema.as_ref().clone());
    jsonschema::options()
        .should_validate_formats(false)
        .build(&schema)
        .ok()
}

/// Checks `args` with a compiled validator; see [`check_arguments`].
pub(crate) fn check(
    validator: &jsonschema::Validator,
    args: &Map<String, Value>,
) -> Result<(), String> {
    let instance = Value::Object(args.clone());
    let problems: Vec<String> = validator
        .iter_errors(&instance)
        .take(5)
        .map(|error| {
            let path = error.instance_path().to_string();
            let field = if path.is_empty() {
                "arguments".to_owned()
            } else {
                path.trim_start_matches('/').replace('/', ".")
            };
            format!("`{field}`: {error}")
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid arguments: {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ContentBlock as Content, JsonObject};
    use std::sync::Arc;

    fn tool(schema: Value) -> Tool {
        let Value::Object(schema) = schema else {
            unreachable!()
        };
        Tool::new("t", "test", Arc::new(schema as JsonObject))
    }

    #[test]
    fn structured_content_wins_then_json_text_then_text() {
        let mut r = CallToolResult::success(vec![Content::text("{\"a\":1}")]);
        assert_eq!(value_of(&r), json!({"a": 1}));
        r.structured_content = Some(json!({"b": 2}));
        assert_eq!(value_of(&r), json!({"b": 2}));
        let r = CallToolResult::success(vec![Content::text("hello world")]);
        assert_eq!(value_of(&r), json!("hello world"));
        let r = CallToolResult::success(vec![Content::text("12 apples")]);
        assert_eq!(value_of(&r), json!("12 apples"));
        let r = CallToolResult::success(vec![
            Content::text("a"),
            Content::image("AAEC", "image/png"),
        ]);
        assert_eq!(
            value_of(&r),
            json!(["a", {"type": "image", "mimeType": "image/png", "data": "AAEC"}])
        );
    }

    #[test]
    fn argument_errors_name_the_field_and_the_expectation() {
        let t = tool(json!({
            "type": "object",
            "properties": {"path": {"type": "string"}, "n": {"type": "integer", "minimum": 1}},
            "required": ["path"],
            "additionalProperties": false
        }));
        let args = |v: Value| v.as_object().cloned().unwrap();
        assert!(check_arguments(&t, &args(json!({"path": "x"}))).is_ok());
        let e = check_arguments(&t, &args(json!({"path": 12}))).unwrap_err();
        assert!(e.contains("`path`") && e.contains("string"), "{e}");
        let e = check_arguments(&t, &args(json!({}))).unwrap_err();
        assert!(e.contains("path") && e.contains("required"), "{e}");
        let e = check_arguments(&t, &args(json!({"path": "x", "n": 0}))).unwrap_err();
        assert!(e.contains("`n`") && e.contains("minimum"), "{e}");
    }
}
