//! The upstream configuration file: Claude Desktop's `{"mcpServers": {...}}` format, as-is.
//!
//! ```json
//! {"mcpServers": {
//!   "fs":     {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
//!              "env": {"DEBUG": "${MY_DEBUG}"}, "cwd": "/srv"},
//!   "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}
//! }}
//! ```
//!
//! `${VAR}` in any string expands from the supervisor's environment (`$$` is a literal `$`);
//! the values stay in the supervisor and never reach the sandbox. `"disabled": true` skips the
//! server and `type` is accepted and ignored. Any other key is ignored with a start-up warning
//! that names the closest known key (`comand`: did you mean `command`?), not an error, since
//! Claude Desktop files carry keys of other clients. Every error names the file, the server
//! and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// How to reach one upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A child process speaking MCP on stdio.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// A streamable-HTTP server.
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// One configured upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerConfig {
    /// The key under `mcpServers`; the name agent code uses (`servers.<name>`).
    pub(crate) name: String,
    pub(crate) transport: Transport,
}

/// A configuration file that cannot be used, naming where the problem is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}: {}{message}", location(.server.as_deref(), .field.as_deref()))]
pub struct UpstreamConfigError {
    /// The file, as given.
    pub file: String,
    /// The server under `mcpServers`, when the problem is inside one.
    pub server: Option<String>,
    /// The field within that server (or the top-level field), when there is one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

fn location(server: Option<&str>, field: Option<&str>) -> String {
    match (server, field) {
        (Some(s), Some(f)) => format!("server `{s}`, field `{f}`: "),
        (Some(s), None) => format!("server `{s}`: "),
        (None, Some(f)) => format!("field `{f}`: "),
        (None, None) => String::new(),
    }
}

/// Reads and validates `path`.
///
/// # Errors
/// [`UpstreamConfigError`] when the file cannot be read, is not JSON, or any server entry is
/// malformed or refers to an unset environment variable.
pub(crate) fn load(path: &Path) -> Result<Vec<ServerConfig>, UpstreamConfigError> {
    let file = path.display().to_string();
    let err = |server: Option<&str>, field: Option<&str>, message: String| UpstreamConfigError {
        file: file.clone(),
        server: server.map(str::to_owned),
        field: field.map(str::to_owned),
        message,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| err(None, None, format!("cannot read: {e}")))?;
    let mut warnings = Vec::new();
    let servers = parse(
        &text,
        &file,
        &|name| std::env::var(name).ok(),
        &mut warnings,
    )?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Ok(servers)
}

/// The keys of a server entry this version reads (`type` is read and ignored).
const KNOWN_KEYS: [&str; 8] = [
    "command", "args", "env", "cwd", "url", "headers", "disabled", "type",
];

/// The known key closest to `key` by edit distance, when it is close enough to be a typo.
fn closest_known_key(key: &str) -> Option<&'static str> {
    KNOWN_KEYS
        .iter()
        .map(|known| (strsim::damerau_levenshtein(key, known), *known))
        .filter(|(distance, known)| *distance <= (known.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// The warning for an unknown key `key` of server `server`, with a typo suggestion.
fn unknown_key_warning(file: &str, server: &str, key: &str) -> String {
    let shown: String = key.chars().take(64).collect();
    match closest_known_key(key) {
        Some(known) => format!(
            "{file}: server `{server}`: unknown key `{shown}` is ignored; did you mean `{known}`?"
        ),
        None => format!(
            "{file}: server `{server}`: unknown key `{shown}` is ignored (known keys: {})",
            KNOWN_KEYS.join(", ")
        ),
    }
}

/// Parses configuration text; `lookup` resolves `${VAR}`. Keys that are ignored add a line to
/// `warnings`.
pub(crate) fn parse(
    text: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<ServerConfig>, UpstreamConfigError> {
    let err = |server: Option<&str>, field: Option<&str>, message: String| UpstreamConfigError {
        file: file.to_owned(),
        server: server.map(str::to_owned),
        field: field.map(str::to_owned),
        message,
    };
    let root: Value =
        serde_json::from_str(text).map_err(|e| err(None, None, format!("not valid JSON: {e}")))?;
    let Some(root) = root.as_object() else {
        return Err(err(
            None,
            None,
            "must be a JSON object with an `mcpServers` object".to_owned(),
        ));
    };
    let servers = match root.get("mcpServers") {
        Some(Value::Object(servers)) => servers,
        Some(_) => {
            return Err(err(
                None,
                Some("mcpServers"),
                "must be an object".to_owned(),
            ));
        }
        None => return Err(err(None, Some("mcpServers"), "is missing".to_owned())),
    };
    let mut out = Vec::with_capacity(servers.len());
    for (name, entry) in servers {
        let name = name.as_str();
        if !valid_server_name(name) {
            return Err(err(
                Some(name),
                None,
                "server names must be 1 to 64 characters of letters, digits, `_` and `-`"
                    .to_owned(),
            ));
        }
        let Some(entry) = entry.as_object() else {
            return Err(err(Some(name), None, "must be an object".to_owned()));
        };
        if entry.get("disabled") == Some(&Value::Bool(true)) {
            continue;
        }
        let unknown: Vec<&str> = entry
            .keys()
            .map(String::as_str)
            .filter(|key| !KNOWN_KEYS.contains(key))
            .collect();
        warnings.extend(
            unknown
                .iter()
                .map(|key| unknown_key_warning(file, name, key)),
        );
        let string = |field: &str| -> Result<Option<String>, UpstreamConfigError> {
            match entry.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => expand(s, lookup)
                    .map(Some)
                    .map_err(|m| err(Some(name), Some(field), m)),
                Some(_) => Err(err(Some(name), Some(field), "must be a string".to_owned())),
            }
        };
        let map = |field: &str| -> Result<BTreeMap<String, String>, UpstreamConfigError> {
            match entry.get(field) {
                None | Some(Value::Null) => Ok(BTreeMap::new()),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => expand(s, lookup)
                            .map(|s| (k.clone(), s))
                            .map_err(|m| err(Some(name), Some(&format!("{field}.{k}")), m)),
                        _ => Err(err(
                            Some(name),
                            Some(&format!("{field}.{k}")),
                            "must be a string".to_owned(),
                        )),
                    })
                    .collect(),
                Some(_) => Err(err(
                    Some(name),
                    Some(field),
                    "must be an object of strings".to_owned(),
                )),
            }
        };
        let transport = match (string("command")?, string("url")?) {
            (Some(_), Some(_)) => {
                return Err(err(
                    Some(name),
                    None,
                    "has both `command` and `url`; use one".to_owned(),
                ));
            }
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err(err(Some(name), Some("command"), "is empty".to_owned()));
                }
                let args = match entry.get("args") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| match v {
                            Value::String(s) => expand(s, lookup)
                                .map_err(|m| err(Some(name), Some(&format!("args[{i}]")), m)),
                            _ => Err(err(
                                Some(name),
                                Some(&format!("args[{i}]")),
                                "must be a string".to_owned(),
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => {
                        return Err(err(
                            Some(name),
                            Some("args"),
                            "must be an array of strings".to_owned(),
                        ));
                    }
                };
                Transport::Stdio {
                    command,
                    args,
                    env: map("env")?,
                    cwd: string("cwd")?.map(PathBuf::from),
                }
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(err(
                        Some(name),
                        Some("url"),
                        format!("must be an http:// or https:// URL, got {url:?}"),
                    ));
                }
                Transport::Http {
                    url,
                    headers: map("headers")?,
                }
            }
            (None, None) => {
                let typo = unknown
                    .iter()
                    .find_map(|key| Some((key, closest_known_key(key)?)))
                    .map(|(key, known)| format!(" (`{key}` is not a key; did you mean `{known}`?)"))
                    .unwrap_or_default();
                return Err(err(
                    Some(name),
                    None,
                    format!(
                        "needs `command` (a stdio server) or `url` (a streamable-HTTP server){typo}"
                    ),
                ));
            }
        };
        out.push(ServerConfig {
            name: name.to_owned(),
            transport,
        });
    }
    Ok(out)
}

/// Server names become `servers.<name>` in JS and `tool://<name>/…` URIs.
fn valid_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Expands `${VAR}` from `lookup`; `$$` is a literal `$`, any other `$` is kept as is.
fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(format!("unclosed `${{` in {text:?}"));
            };
            let var = &body[..end];
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{var}}}` is not a valid environment variable name"
                ));
            }
            let value =
                lookup(var).ok_or_else(|| format!("environment variable `{var}` is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".to_owned()),
            "HOME" => Some("/home/u".to_owned()),
            _ => None,
        }
    }

    fn parse_ok(text: &str) -> Vec<ServerConfig> {
        parse(text, "servers.json", &env, &mut Vec::new()).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(text, "servers.json", &env, &mut Vec::new())
            .unwrap_err()
            .to_string()
    }

    fn warnings(text: &str) -> Vec<String> {
        let mut warnings = Vec::new();
        parse(text, "servers.json", &env, &mut warnings).unwrap();
        warnings
    }

    #[test]
    fn unknown_keys_warn_with_the_closest_known_key() {
        assert_eq!(
            warnings(r#"{"mcpServers": {"a": {"command": "x", "comand": "y", "arg": []}}}"#),
            // In the file's order (serde_json `preserve_order`).
            [
                "servers.json: server `a`: unknown key `comand` is ignored; did you mean `command`?",
                "servers.json: server `a`: unknown key `arg` is ignored; did you mean `args`?",
            ]
        );
        let far = warnings(r#"{"mcpServers": {"a": {"url": "http://h", "autoApprove": []}}}"#);
        assert_eq!(far.len(), 1);
        assert!(
            far[0].contains("unknown key `autoApprove` is ignored (known keys: command,"),
            "{far:?}"
        );
        assert!(warnings(r#"{"mcpServers": {"a": {"command": "x", "type": "stdio"}}}"#).is_empty());
        let long = format!(
            r#"{{"mcpServers": {{"a": {{"command": "x", "{}": 1}}}}}}"#,
            "k".repeat(10_000)
        );
        assert!(warnings(&long)[0].len() < 300, "the echoed key is capped");
    }

    #[test]
    fn a_missing_command_names_the_likely_typo() {
        assert!(
            parse_err(r#"{"mcpServers": {"a": {"comand": "x"}}}"#)
                .contains("needs `command` (a stdio server) or `url` (a streamable-HTTP server) (`comand` is not a key; did you mean `command`?)")
        );
    }

    #[test]
    fn claude_desktop_format_is_accepted_as_is() {
        let servers = parse_ok(
            r#"{"mcpServers": {
                "fs": {"command": "npx", "args": ["-y", "pkg", "${HOME}/x"], "env": {"K": "$${TOKEN}"}, "cwd": "/tmp", "type": "stdio"},
                "web": {"url": "https://h/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
                "off": {"command": "x", "disabled": true}
            }, "globalShortcut": "x"}"#,
        );
        assert_eq!(servers.len(), 2);
        assert_eq!(
            servers[0].transport,
            Transport::Stdio {
                command: "npx".into(),
                args: vec!["-y".into(), "pkg".into(), "/home/u/x".into()],
                env: [("K".to_owned(), "${TOKEN}".to_owned())].into(),
                cwd: Some("/tmp".into()),
            }
        );
        assert_eq!(
            servers[1].transport,
            Transport::Http {
                url: "https://h/mcp".into(),
                headers: [("Authorization".to_owned(), "Bearer s3cret".to_owned())].into(),
            }
        );
    }

    #[test]
    fn errors_name_the_file_the_server_and_the_field() {
        for (text, expected) in [
            ("{", "servers.json: not valid JSON"),
            ("[]", "servers.json: must be a JSON object"),
            ("{}", "servers.json: field `mcpServers`: is missing"),
            (
                r#"{"mcpServers": {"a": {"command": 1}}}"#,
                "servers.json: server `a`, field `command`: must be a string",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "args": ["ok", 2]}}}"#,
                "server `a`, field `args[1]`: must be a string",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "env": {"K": "${NOPE}"}}}}"#,
                "server `a`, field `env.K`: environment variable `NOPE` is not set",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "ftp://x"}}}"#,
                "server `a`, field `url`: must be an http",
            ),
            (
                r#"{"mcpServers": {"a": {}}}"#,
                "server `a`: needs `command`",
            ),
            (
                r#"{"mcpServers": {"a b": {"command": "x"}}}"#,
                "server `a b`: server names",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "url": "http://h"}}}"#,
                "server `a`: has both",
            ),
        ] {
            let message = parse_err(text);
            assert!(
                message.contains(expected),
                "{text}\n  got: {message}\n  expected: {expected}"
            );
        }
    }
}
