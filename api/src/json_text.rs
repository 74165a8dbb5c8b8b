//! Repairs the engine's JSON text so `serde_json` can parse it.
//!
//! `JSON.stringify` is "well-formed": a lone UTF-16 surrogate is written as a `\uXXXX` escape
//! rather than failing. That text is valid JSON, but `serde_json` (like every parser that
//! produces Rust `String`s) rejects it, because a lone surrogate is not a Unicode scalar value.
//! The structured result the agent receives therefore gets U+FFFD in those places, while the
//! text block keeps the engine's exact JSON text.

use std::borrow::Cow;

/// Returns `json` with every `\uXXXX` escape of a lone surrogate replaced by `\ufffd`.
///
/// Escaped surrogate pairs (`\ud83d\ude00`) are kept, since they form one scalar value. An
/// escaped backslash followed by `u` (`\\ud800`) is text, not an escape, and is kept too.
/// Borrows when there is nothing to replace.
pub(crate) fn replace_lone_surrogate_escapes(json: &str) -> Cow<'_, str> {
    let bytes = json.as_bytes();
    let mut out: Option<String> = None;
    // Start of the part of `json` not yet copied into `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape: `\` and one character, or `\uXXXX`.
        let Some(unit) = escaped_unit(bytes, i) else {
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF => {
                if escaped_unit(bytes, i + 6).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)) {
                    // A pair: keep both escapes.
                    i += 12;
                    continue;
                }
            }
            0xDC00..=0xDFFF => {}
            _ => {
                i += 6;
                continue;
            }
        }
        let out = out.get_or_insert_with(|| String::with_capacity(json.len()));
        out.push_str(&json[copied..i]);
        out.push_str("\\ufffd");
        i += 6;
        copied = i;
    }
    match out {
        None => Cow::Borrowed(json),
        Some(mut out) => {
            out.push_str(&json[copied..]);
            Cow::Owned(out)
        }
    }
}

/// The UTF-16 code unit of a `\uXXXX` escape starting at `at`, if there is one.
fn escaped_unit(bytes: &[u8], at: usize) -> Option<u16> {
    let escape = bytes.get(at..at + 6)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::replace_lone_surrogate_escapes as fix;

    #[test]
    fn text_without_escapes_is_borrowed() {
        assert!(matches!(fix(r#"{"a":"b"}"#), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(
            fix(r#""\n\u0000""#),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(fix(r#""\ud800""#), r#""\ufffd""#);
        assert_eq!(fix(r#""\uDFFF""#), r#""\ufffd""#);
        assert_eq!(fix(r#""a\udc00b\ud800""#), r#""a\ufffdb\ufffd""#);
        // A high surrogate followed by another high surrogate: both are lone.
        assert_eq!(fix(r#""\ud800\ud800""#), r#""\ufffd\ufffd""#);
        // A low surrogate before a high one is not a pair.
        assert_eq!(fix(r#""\udc00\ud800""#), r#""\ufffd\ufffd""#);
    }

    #[test]
    fn pairs_and_other_escapes_are_kept() {
        assert_eq!(fix(r#""\ud83d\ude00""#), r#""\ud83d\ude00""#);
        assert_eq!(fix(r#""\u0000\u2028\"\\""#), r#""\u0000\u2028\"\\""#);
        // An escaped backslash followed by `ud800` is the text `\ud800`, not an escape.
        assert_eq!(fix(r#""\\ud800""#), r#""\\ud800""#);
        assert_eq!(fix(r#""\\\ud800""#), r#""\\\ufffd""#);
    }

    #[test]
    fn repaired_text_parses_with_serde_json() {
        let engine = "{\"s\":\"😀\\ud800\\u0000\u{2028}\",\"pair\":\"\\ud83d\\ude00\",\"lone\":[\"\\udfff\"]}";
        assert!(serde_json::from_str::<serde_json::Value>(engine).is_err());
        let value: serde_json::Value = serde_json::from_str(&fix(engine)).unwrap();
        assert_eq!(value["s"], "😀\u{fffd}\u{0}\u{2028}");
        assert_eq!(value["pair"], "😀");
        assert_eq!(value["lone"][0], "\u{fffd}");
    }

    #[test]
    fn truncated_escapes_do_not_panic() {
        assert_eq!(fix(r#""\ud8"#), r#""\ud8"#);
        assert_eq!(fix("\\"), "\\");
        assert_eq!(fix(r#""\ud800\ud"#), r#""\ufffd\ud"#);
        assert_eq!(fix("\"\\u00é9\""), "\"\\u00é9\"");
    }
}
