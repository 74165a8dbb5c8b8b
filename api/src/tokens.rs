//! Token counts in OpenAI's `o200k_base` encoding (tiktoken-rs), the stand-in for a model's
//! own tokenizer that the token-economy targets are stated in.
//!
//! [`count`] is exact. [`dumps`] renders JSON the way Python's `json.dumps` does by default
//! (`", "` and `": "` separators, non-ASCII escaped as `\uXXXX`), because the tool-surface
//! target counts `json.dumps` of each tool's name, description and input schema.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;
use tiktoken_rs::CoreBPE;

/// The encoder, built once per process.
fn bpe() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().expect("o200k_base ships with tiktoken-rs"))
}

/// The number of `o200k_base` tokens in `text` (special tokens are counted as plain text).
pub(crate) fn count(text: &str) -> usize {
    bpe().encode_ordinary(text).len()
}

/// Texts up to this many bytes are counted exactly by [`count_or_estimate`] (what
/// `mcp-kernel run` prints); larger ones are estimated.
pub(crate) const EXACT_LIMIT_BYTES: usize = 512;

/// `o200k_base` tokens of `text`: exact up to [`EXACT_LIMIT_BYTES`], estimated above.
pub(crate) fn count_or_estimate(text: &str) -> usize {
    if text.len() <= EXACT_LIMIT_BYTES {
        count(text)
    } else {
        estimate(text)
    }
}

/// What a tool result costs the model that reads it, in `o200k_base` tokens of its text blocks
/// plus its `structuredContent` as compact JSON (`_meta` is not counted: clients do not show
/// it to the model), always by [`estimate`]. The exact count cost about 50 µs per result in a
/// release build (tiktoken-rs' regex pre-tokenisation: a cached `execute` took 0.128 ms p50
/// with it and 0.078 ms without, measured 2026-12-02 with a raw stdio client), far over 5% of
/// a call, and it would make the supervisor load the encoder's ranks.
pub(crate) fn returned(result: &rmcp::model::CallToolResult) -> usize {
    let mut text = String::new();
    for block in &result.content {
        if let Some(block) = block.as_text() {
            text.push_str(&block.text);
        }
    }
    if let Some(structured) = &result.structured_content {
        text.push_str(&structured.to_string());
    }
    estimate(&text)
}

/// Estimated `o200k_base` tokens of `text`: [`mcpk_session::estimate_tokens`].
pub(crate) fn estimate(text: &str) -> usize {
    mcpk_session::estimate_tokens(text)
}

/// What one tool definition costs a model on every request: exact `o200k_base` tokens of
/// Python's `json.dumps` of its name, description and input schema.
pub(crate) fn definition(tool: &rmcp::model::Tool) -> usize {
    count(&dumps(&serde_json::json!({
        "name": tool.name,
        "description": tool.description,
        "inputSchema": Value::Object(tool.input_schema.as_ref().clone()),
    })))
}

/// `value` as Python's `json.dumps(value)` prints it.
pub(crate) fn dumps(value: &Value) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value
        .serialize(&mut serializer)
        .expect("a JSON value always serialises");
    String::from_utf8(out).expect("the formatter writes ASCII")
}

/// `json.dumps`' default layout: spaces after `,` and `:`, `ensure_ascii=True`.
struct PythonFormatter;

/// `json.dumps`' separator before every element but the first of an array or object.
fn comma<W: ?Sized + std::io::Write>(writer: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        comma(writer, first)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        comma(writer, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dumps_matches_python() {
        // python3 -c 'import json; print(json.dumps({"a": [1, "é😀"], "b": {"c": None}}))'
        assert_eq!(
            dumps(&json!({"a": [1, "é😀"], "b": {"c": null}})),
            r#"{"a": [1, "\u00e9\ud83d\ude00"], "b": {"c": null}}"#
        );
    }

    fn samples() -> Vec<(&'static str, String)> {
        let records: Vec<serde_json::Value> = (0..200)
            .map(|i| json!({"id": i, "name": format!("user-{i}"), "email": format!("u{i}@example.com"), "active": i % 3 == 0, "score": i as f64 * 1.25}))
            .collect();
        let log: String = (0..200)
            .map(|i| {
                format!(
                    "2026-12-02T03:{:02}:{:02}Z {} request {i} took {}ms path=/api/v1/items/{i}\n",
                    i % 60,
                    i % 60,
                    ["INFO", "WARN", "ERROR"][i % 3],
                    i * 7 % 900
                )
            })
            .collect();
        let prose = "The kernel runs agent code in a sandboxed worker process. Each session \
            keeps its state between calls, and results that are deterministic are cached. "
            .repeat(40);
        vec![
            (
                "json records",
                serde_json::Value::Array(records).to_string(),
            ),
            ("log lines", log),
            ("prose", prose),
        ]
    }

    #[test]
    fn estimates_are_within_25_percent() {
        let mut worst = 0.0f64;
        let mut report = Vec::new();
        for (what, text) in samples() {
            let (exact, estimated) = (count(&text), estimate(&text));
            let error = (estimated as f64 - exact as f64).abs() / exact as f64;
            report.push(format!(
                "{what}: {} bytes, {exact} tokens, estimated {estimated}",
                text.len()
            ));
            worst = worst.max(error);
        }
        assert!(
            worst <= 0.25,
            "worst error {:.0}%: {report:#?}",
            worst * 100.0
        );
    }

    #[test]
    fn counts_o200k_tokens() {
        // " world" is one token after "hello" in every OpenAI encoding.
        assert_eq!(count("hello world"), 2);
        assert_eq!(count(""), 0);
    }
}
