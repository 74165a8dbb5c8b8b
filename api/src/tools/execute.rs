//! The `execute` tool's arguments: a serde struct whose JSON schema comes from schemars.
//!
//! Deserialisation never coerces: a number is not a string, `"100"` is not an integer, `1.5`
//! and `1.0` are not integers. Each field's deserialiser words its own rejection, naming the
//! field and the problem in terms an agent can act on (see [`super::ArgumentError`]).

use std::time::Duration;

use rmcp::model::JsonObject;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use mcpk_session::{CacheMode, SessionMode};

use super::{ArgumentError, describe};
use crate::config::ServeConfig;

/// The name of the session used when the call names none: the connection's own session,
/// never shared with another connection.
pub(crate) const DEFAULT_SESSION: &str = mcpk_session::DEFAULT_SESSION;

/// The longest session name accepted, in characters.
pub(crate) const MAX_SESSION_CHARS: usize = 128;

/// `execute`'s arguments as they arrive. The schema the tool advertises is derived from this
/// struct (with the configured timeout bounds filled in by [`input_schema`]).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExecuteInput {
    /// JavaScript: the body of an async function.
    #[serde(deserialize_with = "code")]
    #[schemars(description = "")]
    code: String,
    /// Named session with its own `mcp.state`, kept across connections and restarts; omit
    /// (or "default") for this connection's own session, closed when the connection ends.
    #[serde(default, deserialize_with = "session")]
    #[schemars(description = "Persistent named session.")]
    session: Option<String>,
    /// Wall-clock limit in milliseconds (the schema's description, with the configured
    /// default and maximum, is written by [`input_schema`]).
    #[serde(default, deserialize_with = "timeout_ms")]
    #[schemars(with = "Option<u64>")]
    timeout_ms: Option<Timeout>,
    /// `auto` (default): resume `session`, or create it if it never existed; `resume`: fail
    /// with SessionNotFound instead of creating; `new`: create it, failing with SessionExists
    /// if it exists; an expired name is reused only with `new`.
    #[serde(default, deserialize_with = "session_mode")]
    #[schemars(with = "Option<ModeSchema>", description = "")]
    session_mode: Option<SessionMode>,
    /// `auto` (default): answer from the result cache when this exact code was run before
    /// with the same inputs and was deterministic; `off`: neither read nor write it;
    /// `refresh`: run, then replace the cached answer.
    #[serde(default, deserialize_with = "cache")]
    #[schemars(with = "Option<CacheSchema>", description = "")]
    cache: Option<CacheMode>,
}

/// The schema of `cache` (the value itself is [`CacheMode`]).
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "only its JSON schema is used")]
enum CacheSchema {
    Auto,
    Off,
    Refresh,
}

fn cache<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<CacheMode>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(mode) if mode == "auto" => Ok(Some(CacheMode::Auto)),
        Value::String(mode) if mode == "off" => Ok(Some(CacheMode::Off)),
        Value::String(mode) if mode == "refresh" => Ok(Some(CacheMode::Refresh)),
        other => Err(serde::de::Error::custom(format!(
            "`cache` must be \"auto\", \"off\" or \"refresh\", got {}",
            describe(&other)
        ))),
    }
}

/// The schema of `session_mode` (the value itself is [`SessionMode`]).
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "only its JSON schema is used")]
enum ModeSchema {
    Auto,
    Resume,
    New,
}

fn session_mode<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SessionMode>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(mode) if mode == "auto" => Ok(Some(SessionMode::Auto)),
        Value::String(mode) if mode == "resume" => Ok(Some(SessionMode::Resume)),
        Value::String(mode) if mode == "new" => Ok(Some(SessionMode::New)),
        other => Err(serde::de::Error::custom(format!(
            "`session_mode` must be \"auto\", \"resume\" or \"new\", got {}",
            describe(&other)
        ))),
    }
}

/// A `timeout_ms` value: its upper bound is configured, so the range is checked after
/// deserialisation, where the configuration is known.
#[derive(Debug)]
enum Timeout {
    /// A positive integer.
    Ms(u64),
    /// Anything else, described for the message.
    Invalid(String),
}

fn code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(code) => Ok(code),
        other => Err(serde::de::Error::custom(format!(
            "`code` must be a string of JavaScript, got {}",
            describe(&other)
        ))),
    }
}

/// An explicit `null` means "not given" (the schema marks optional fields nullable), since
/// some clients serialise unset optionals that way.
fn session<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(name) if is_valid_session_name(&name) => Ok(Some(name)),
        other => Err(serde::de::Error::custom(format!(
            "`session` must be a string of 1 to {MAX_SESSION_CHARS} characters from \
             A-Z a-z 0-9 _ . : -, got {}",
            describe(&other)
        ))),
    }
}

fn timeout_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timeout>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => None,
        Value::Number(n) if n.as_u64().is_some_and(|ms| ms >= 1) => {
            Some(Timeout::Ms(n.as_u64().unwrap_or_default()))
        }
        other => Some(Timeout::Invalid(describe(&other))),
    })
}

/// The input schema of `execute`, with the configured timeout bounds filled in.
pub(crate) fn input_schema(config: &ServeConfig) -> JsonObject {
    let schema = rmcp::handler::server::tool::schema_for_input::<ExecuteInput>()
        .unwrap_or_else(|error| panic!("the execute schema is not an object schema: {error}"));
    let mut schema = schema.as_ref().clone();
    super::compact_schema(&mut schema);
    if let Some(Value::Object(timeout)) = schema
        .get_mut("properties")
        .and_then(|properties| properties.get_mut("timeout_ms"))
    {
        timeout.insert(
            "description".into(),
            format!(
                "ms (default {}, max {})",
                config.default_timeout_ms(),
                config.max_timeout_ms()
            )
            .into(),
        );
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
    /// How a session that is not live is treated.
    pub(crate) session_mode: SessionMode,
    /// Whether the result cache may answer or keep the call.
    pub(crate) cache: CacheMode,
    /// The wall-clock limit for this call.
    pub(crate) timeout: Duration,
}

impl ExecuteArgs {
    /// Deserialises raw tool arguments (taken, so `code` is not copied) and checks the timeout
    /// against the configured bounds.
    ///
    /// # Errors
    /// An [`ArgumentError`] whose message names the field and the problem.
    pub(crate) fn parse(
        arguments: Option<JsonObject>,
        config: &ServeConfig,
    ) -> Result<Self, ArgumentError> {
        let input: ExecuteInput =
            serde_json::from_value(Value::Object(arguments.unwrap_or_default()))
                .map_err(|error| ArgumentError::from_serde(crate::server::EXECUTE, &error))?;
        let max = config.max_timeout_ms();
        let timeout = match input.timeout_ms {
            None => config.default_timeout,
            Some(Timeout::Ms(ms)) if ms <= max => Duration::from_millis(ms),
            Some(Timeout::Ms(ms)) => return Err(bad_timeout(max, &ms.to_string())),
            Some(Timeout::Invalid(got)) => return Err(bad_timeout(max, &got)),
        };
        Ok(Self {
            code: input.code,
            session: input.session.unwrap_or_else(|| DEFAULT_SESSION.to_owned()),
            session_mode: input.session_mode.unwrap_or_default(),
            cache: input.cache.unwrap_or_default(),
            timeout,
        })
    }
}

fn bad_timeout(max: u64, got: &str) -> ArgumentError {
    ArgumentError(format!(
        "execute: `timeout_ms` must be an integer from 1 to {max}, got {got}"
    ))
}

/// 1 to [`MAX_SESSION_CHARS`] characters, each one of `A-Z a-z 0-9 _ . : -`.
fn is_valid_session_name(name: &str) -> bool {
    (1..=MAX_SESSION_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(arguments: Value) -> Result<ExecuteArgs, String> {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        ExecuteArgs::parse(Some(arguments), &ServeConfig::default()).map_err(|error| error.0)
    }

    #[test]
    fn defaults_apply_when_optionals_are_absent_or_null() {
        let expected = ExecuteArgs {
            code: "1".into(),
            session: "default".into(),
            session_mode: SessionMode::Auto,
            cache: CacheMode::Auto,
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
                .0,
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
                "execute: unknown field `sesion`, expected one of `code`, `session`, `timeout_ms`, `session_mode`, `cache`",
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
    fn long_values_and_unknown_names_are_shortened_in_messages() {
        let message = parse(json!({"code": "1", "session": "x y".repeat(1000)})).unwrap_err();
        assert!(message.len() < 200, "{message}");
        assert!(message.ends_with('…'), "{message}");
        let mut arguments = serde_json::Map::new();
        arguments.insert("code".into(), json!("1"));
        arguments.insert("k".repeat(100_000), json!(1));
        let message = parse(Value::Object(arguments)).unwrap_err();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("unknown field `kkk"), "{message}");
        let message = parse(json!({"code": "1", "timeout_ms": "9".repeat(10_000)})).unwrap_err();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn rejections_are_tool_errors_the_model_sees() {
        let result = ArgumentError("execute: x".into()).into_result();
        assert_eq!(result.is_error, Some(true));
        let structured = result.structured_content.unwrap();
        assert_eq!(structured["error"]["name"], "ArgumentError");
        assert_eq!(structured["error"]["message"], "execute: x");
    }

    #[test]
    fn schema_is_closed_and_says_the_configured_bounds() {
        let config = ServeConfig {
            max_timeout: Duration::from_secs(9),
            ..ServeConfig::default()
        };
        let schema = Value::Object(input_schema(&config));
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], json!(["code"]));
        assert_eq!(schema["properties"]["code"]["type"], "string");
        assert_eq!(schema["properties"]["session"]["type"], "string");
        assert_eq!(schema["properties"]["timeout_ms"]["type"], "integer");
        assert_eq!(
            schema["properties"]["timeout_ms"]["description"],
            "ms (default 5000, max 9000)"
        );
        assert_eq!(
            schema["properties"]["cache"]["enum"],
            json!(["auto", "off", "refresh"])
        );
    }
}
