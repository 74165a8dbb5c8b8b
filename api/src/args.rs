//! The `execute` tool's arguments: their JSON schema and their validation.
//!
//! Validation is written out by hand instead of going through `serde::Deserialize`, so that
//! every rejection names the field and the problem in words an agent can act on, and so that
//! nothing is ever coerced: a number is not a string, `"100"` is not an integer, `1.5` and
//! `1.0` are not integers.

use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::JsonObject;
use serde_json::Value;

use crate::config::ServeConfig;

/// The name of the session used when the call names none. Over stdio there is one MCP
/// connection per process, so this is that connection's session.
pub(crate) const DEFAULT_SESSION: &str = "default";

/// The longest session name accepted, in characters.
pub(crate) const MAX_SESSION_CHARS: usize = 128;

const FIELDS: [&str; 3] = ["code", "session", "timeout_ms"];

/// The schema the tool advertises. Validation does not read it; it documents the contract that
/// [`ExecuteArgs::parse`] enforces.
#[derive(schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "only the schema is used; parse() reads the JSON itself"
)]
struct ExecuteSchema {
    /// JavaScript: the body of an async function.
    code: String,
    /// Named session with its own `mcp.state`; omit for the default session.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_.:-]+$"))]
    session: Option<String>,
    /// Wall-clock limit in milliseconds.
    #[schemars(range(min = 1))]
    timeout_ms: Option<u64>,
}

/// The input schema of `execute`, with the configured timeout bounds filled in.
pub(crate) fn input_schema(config: &ServeConfig) -> JsonObject {
    let schema = rmcp::handler::server::tool::schema_for_input::<ExecuteSchema>()
        .unwrap_or_else(|error| panic!("the execute schema is not an object schema: {error}"));
    let mut schema = schema.as_ref().clone();
    if let Some(Value::Object(timeout)) = schema
        .get_mut("properties")
        .and_then(|properties| properties.get_mut("timeout_ms"))
    {
        timeout.insert("maximum".into(), config.max_timeout_ms().into());
        timeout.insert("default".into(), config.default_timeout_ms().into());
    }
    schema
}

/// Validated arguments of one `execute` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecuteArgs {
    /// The JavaScript source.
    pub(crate) code: String,
    /// The session name, [`DEFAULT_SESSION`] when none was given.
    pub(crate) session: String,
    /// The wall-clock limit for this call.
    pub(crate) timeout: Duration,
}

impl ExecuteArgs {
    /// Validates raw tool arguments against the contract, with the configured timeout bounds.
    ///
    /// An explicit `null` for an optional field means "not given" (the schema marks those
    /// fields nullable), since some clients serialise unset optionals that way.
    ///
    /// # Errors
    /// An `invalid_params` (-32602) error whose message names the field and the problem.
    pub(crate) fn parse(
        arguments: Option<&JsonObject>,
        config: &ServeConfig,
    ) -> Result<Self, ErrorData> {
        let empty = JsonObject::new();
        let arguments = arguments.unwrap_or(&empty);
        if let Some(unknown) = arguments.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(invalid(format!(
                "unknown field `{}`, expected one of `code`, `session`, `timeout_ms`",
                shorten(unknown)
            )));
        }

        let code = match arguments.get("code") {
            None => return Err(invalid("missing required field `code`".to_owned())),
            Some(Value::String(code)) => code.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "`code` must be a string of JavaScript, got {}",
                    describe(other)
                )));
            }
        };

        let session = match arguments.get("session") {
            None | Some(Value::Null) => DEFAULT_SESSION.to_owned(),
            Some(Value::String(name)) if is_valid_session_name(name) => name.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "`session` must be a string of 1 to {MAX_SESSION_CHARS} characters from \
                     A-Z a-z 0-9 _ . : -, got {}",
                    describe(other)
                )));
            }
        };

        let max = config.max_timeout_ms();
        let timeout = match arguments.get("timeout_ms") {
            None | Some(Value::Null) => config.default_timeout,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|ms| (1..=max).contains(&ms)) => {
                Duration::from_millis(n.as_u64().unwrap_or_default())
            }
            Some(other) => {
                return Err(invalid(format!(
                    "`timeout_ms` must be an integer from 1 to {max}, got {}",
                    describe(other)
                )));
            }
        };

        Ok(Self {
            code,
            session,
            timeout,
        })
    }
}

/// 1 to [`MAX_SESSION_CHARS`] characters, each one of `A-Z a-z 0-9 _ . : -`.
fn is_valid_session_name(name: &str) -> bool {
    (1..=MAX_SESSION_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn invalid(problem: String) -> ErrorData {
    ErrorData::invalid_params(format!("execute: {problem}"), None)
}

/// The offending value as JSON, cut short so a huge argument does not flood the error.
fn describe(value: &Value) -> String {
    shorten(&value.to_string())
}

fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    match text.char_indices().nth(MAX_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(arguments: Value) -> Result<ExecuteArgs, String> {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        ExecuteArgs::parse(Some(&arguments), &ServeConfig::default()).map_err(|error| {
            assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS);
            error.message.into_owned()
        })
    }

    #[test]
    fn defaults_apply_when_optionals_are_absent_or_null() {
        let expected = ExecuteArgs {
            code: "1".into(),
            session: "default".into(),
            timeout: Duration::from_millis(5000),
        };
        assert_eq!(parse(json!({"code": "1"})).unwrap(), expected);
        assert_eq!(
            parse(json!({"code": "1", "session": null, "timeout_ms": null})).unwrap(),
            expected
        );
        assert_eq!(
            ExecuteArgs::parse(None, &ServeConfig::default())
                .unwrap_err()
                .message,
            "execute: missing required field `code`"
        );
    }

    #[test]
    fn valid_values_are_taken() {
        let args = parse(json!({"code": "", "session": "a-Z_0.9:x", "timeout_ms": 60000})).unwrap();
        assert_eq!(args.code, "");
        assert_eq!(args.session, "a-Z_0.9:x");
        assert_eq!(args.timeout, Duration::from_secs(60));
        assert!(parse(json!({"code": "1", "session": "s".repeat(128)})).is_ok());
        assert!(parse(json!({"code": "1", "timeout_ms": 1})).is_ok());
    }

    #[test]
    fn bad_values_are_named_and_never_coerced() {
        let cases = [
            (json!({}), "execute: missing required field `code`"),
            (
                json!({"code": 42}),
                "execute: `code` must be a string of JavaScript, got 42",
            ),
            (
                json!({"code": null}),
                "execute: `code` must be a string of JavaScript, got null",
            ),
            (
                json!({"code": "1", "timeout_ms": "100"}),
                "execute: `timeout_ms` must be an integer from 1 to 60000, got \"100\"",
            ),
            (
                json!({"code": "1", "timeout_ms": 0}),
                "execute: `timeout_ms` must be an integer from 1 to 60000, got 0",
            ),
            (
                json!({"code": "1", "timeout_ms": 60001}),
                "execute: `timeout_ms` must be an integer from 1 to 60000, got 60001",
            ),
            (
                json!({"code": "1", "timeout_ms": 1.5}),
                "execute: `timeout_ms` must be an integer from 1 to 60000, got 1.5",
            ),
            (
                json!({"code": "1", "timeout_ms": 100.0}),
                "execute: `timeout_ms` must be an integer from 1 to 60000, got 100.0",
            ),
            (
                json!({"code": "1", "timeout_ms": -5}),
                "execute: `timeout_ms` must be an integer from 1 to 60000, got -5",
            ),
            (
                json!({"code": "1", "sesion": "a"}),
                "execute: unknown field `sesion`, expected one of `code`, `session`, `timeout_ms`",
            ),
        ];
        for (arguments, expected) in cases {
            assert_eq!(
                parse(arguments.clone()).unwrap_err(),
                expected,
                "{arguments}"
            );
        }
        for bad in [
            json!(""),
            json!("a b"),
            json!("s".repeat(129)),
            json!("é"),
            json!(7),
        ] {
            let message = parse(json!({"code": "1", "session": bad})).unwrap_err();
            assert!(
                message.starts_with("execute: `session` must be"),
                "{message}"
            );
        }
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let message = parse(json!({"code": "1", "session": "x y".repeat(1000)})).unwrap_err();
        assert!(message.len() < 200, "{message}");
        assert!(message.ends_with('…'), "{message}");
    }

    #[test]
    fn schema_is_closed_and_carries_the_configured_bounds() {
        let config = ServeConfig {
            max_timeout: Duration::from_secs(9),
            ..ServeConfig::default()
        };
        let schema = Value::Object(input_schema(&config));
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], json!(["code"]));
        assert_eq!(schema["properties"]["code"]["type"], "string");
        assert_eq!(schema["properties"]["session"]["maxLength"], 128);
        assert_eq!(schema["properties"]["timeout_ms"]["minimum"], 1);
        assert_eq!(schema["properties"]["timeout_ms"]["maximum"], 9000);
        assert_eq!(schema["properties"]["timeout_ms"]["default"], 5000);
    }
}
