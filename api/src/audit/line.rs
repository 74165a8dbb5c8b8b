//! One audit line: its JSON shape, its hash, and the link to the line before it.
//!
//! A line is the compact JSON of a [`Line`] (members in this order: `seq`, `time`, `event`,
//! the event's members, `prev`, `hash`) followed by `\n`. Its `hash` is the lowercase hex
//! SHA-256 of the line's bytes without the `hash` member: the exact bytes up to and
//! excluding `,"hash":"`, then `}`. So `hash` covers every other byte of the line, `prev`
//! included, and `prev` is the `hash` of the line before ([`GENESIS`], 64 zeros, on the
//! first line). `seq` counts lines from 1 with no gap, so a removed or moved line is named
//! precisely.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The `prev` of the first line.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest line `verify`, `report` and start-up read, in bytes (without its newline). A
/// record the writer makes is far shorter: at most 256 tool calls of names cut to 128 bytes.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// What ends every line: `,"hash":"` + 64 hex digits + `"}`.
const HASH_PREFIX: &[u8] = b",\"hash\":\"";
const HASH_SUFFIX_BYTES: usize = HASH_PREFIX.len() + 64 + 2;

/// One line of the log (without its `hash`, which [`seal`] appends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Line {
    /// 1 for the first line of the file, then +1 per line.
    pub(crate) seq: u64,
    /// RFC 3339 UTC time with milliseconds (`2025-01-02T03:04:05.678Z`): when the call
    /// ended, or when a `dropped` line was written.
    pub(crate) time: String,
    /// What happened.
    #[serde(flatten)]
    pub(crate) entry: Entry,
    /// The `hash` of the line before, or [`GENESIS`].
    pub(crate) prev: String,
}

/// The events a line records, tagged by `event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// One `execute` call.
    Execute(ExecuteRecord),
    /// `dropped` records never reached the file: the writer's queue was full, or writing
    /// them failed.
    Dropped {
        /// How many, since the last line.
        dropped: u64,
    },
}

/// One `execute` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExecuteRecord {
    /// The caller's tenant (`--tenant` over stdio, the token's tenant over HTTP).
    pub(crate) tenant: String,
    /// The session as the call named it (`"default"` when it named none); `null` when the
    /// arguments could not be read.
    pub(crate) session: Option<String>,
    /// Lowercase hex SHA-256 of the code's UTF-8 bytes; `null` when the arguments could not
    /// be read.
    pub(crate) code_sha256: Option<String>,
    /// The upstream tool calls the code made, in order (at most 256).
    pub(crate) tools: Vec<ToolRecord>,
    /// Tool calls made after the first 256, not listed.
    pub(crate) tools_unlisted: u64,
    /// From the call's turn in its session queue to its answer, in milliseconds.
    pub(crate) duration_ms: u64,
    /// `"ok"`; the error name the agent saw (`"Error"`, `"TimeoutError"`, `"ToolError"`,
    /// `"SessionNotFound"`, …); `"rejected"` for arguments refused before anything ran;
    /// `"cancelled"` when the client cancelled the request.
    pub(crate) status: String,
    /// Bytes of the result's JSON text as returned (after truncation to
    /// `max_result_bytes`); 0 when the call failed.
    pub(crate) result_bytes: u64,
    /// The result cache tier that answered (`"l1"` or `"l2"`), or `null` when the code ran.
    pub(crate) cache: Option<String>,
}

/// One upstream tool call in an [`ExecuteRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ToolRecord {
    /// The upstream server.
    pub(crate) server: String,
    /// The tool.
    pub(crate) tool: String,
    /// Lowercase hex SHA-256 of the canonical JSON of the arguments (keys sorted, no
    /// whitespace; `mcpk_session::canonical_json`).
    pub(crate) args_sha256: String,
}

/// `line` as its bytes with `hash` appended, and that hash; no newline.
pub(crate) fn seal(line: &Line) -> (Vec<u8>, String) {
    let mut bytes = serde_json::to_vec(line).unwrap_or_default();
    let hash = mcpk_session::sha256_hex(&bytes);
    bytes.pop(); // the closing `}`
    bytes.extend_from_slice(HASH_PREFIX);
    bytes.extend_from_slice(hash.as_bytes());
    bytes.extend_from_slice(b"\"}");
    (bytes, hash)
}

/// Why a line is not a sealed audit line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unsealed {
    /// It does not end with a `hash` member, or is not a line record.
    #[error("not an audit line: {0}")]
    Malformed(String),
    /// Its `hash` is not the hash of its other bytes.
    #[error("its content does not match its hash (the line was altered)")]
    Altered,
}

/// The line in `bytes` (one line, no newline) and its hash, once its hash checks out.
pub(crate) fn unseal(bytes: &[u8]) -> Result<(Line, String), Unsealed> {
    let Some(split) = bytes.len().checked_sub(HASH_SUFFIX_BYTES) else {
        return Err(Unsealed::Malformed("too short".to_owned()));
    };
    let (body, tail) = bytes.split_at(split);
    let hash = tail
        .strip_prefix(HASH_PREFIX)
        .and_then(|rest| rest.strip_suffix(b"\"}"))
        .filter(|hex| hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| Unsealed::Malformed("it does not end with its hash".to_owned()))?;
    let line: Line =
        serde_json::from_slice(bytes).map_err(|e| Unsealed::Malformed(e.to_string()))?;
    let mut hasher = Sha256::new();
    hasher.update(body);
    hasher.update(b"}");
    let expected = hasher.finalize();
    let hash = String::from_utf8_lossy(hash).into_owned();
    let mut computed = String::with_capacity(64);
    for byte in expected {
        use std::fmt::Write as _;
        let _ = write!(computed, "{byte:02x}");
    }
    if computed != hash {
        return Err(Unsealed::Altered);
    }
    Ok((line, hash))
}

/// Now, as a line's `time`.
pub(crate) fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// `at` in UTC as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn format_time(at: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// An RFC 3339 time (any offset).
///
/// # Errors
/// A message naming the expected form.
pub(crate) fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{text}` is not an RFC 3339 time like 2025-01-31T12:00:00Z: {e}"))
}

/// Where a chain ends: the last line's `seq` and `hash`, or `(0, GENESIS)` for an empty
/// file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainEnd {
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

impl ChainEnd {
    pub(crate) fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// The end of the chain in the file at `path` (missing or empty: the genesis), reading at
/// most the last [`MAX_LINE_BYTES`] + 1 bytes.
///
/// # Errors
/// The file cannot be read, ends without a newline (a write was cut off), or its last line
/// is not a sealed audit line.
pub(crate) fn chain_end(path: &Path) -> Result<ChainEnd, String> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ChainEnd::genesis()),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    if len == 0 {
        return Ok(ChainEnd::genesis());
    }
    let window = len.min(MAX_LINE_BYTES as u64 + 1);
    file.seek(SeekFrom::Start(len - window))
        .map_err(|e| format!("cannot read it: {e}"))?;
    let mut tail = Vec::with_capacity(usize::try_from(window).unwrap_or(0));
    file.read_to_end(&mut tail)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let Some(body) = tail.strip_suffix(b"\n") else {
        return Err("its last line is incomplete (a write was cut off)".to_owned());
    };
    let start = match body.iter().rposition(|b| *b == b'\n') {
        Some(newline) => newline + 1,
        None if window == len => 0,
        None => return Err(format!("its last line is over {MAX_LINE_BYTES} bytes")),
    };
    let (line, hash) =
        unseal(&body[start..]).map_err(|e| format!("its last line is broken: {e}"))?;
    Ok(ChainEnd {
        seq: line.seq,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn execute(tenant: &str) -> Entry {
        Entry::Execute(ExecuteRecord {
            tenant: tenant.to_owned(),
            session: Some("default".to_owned()),
            code_sha256: Some(mcpk_session::sha256_hex(b"1 + 1")),
            tools: vec![ToolRecord {
                server: "fs".to_owned(),
                tool: "read".to_owned(),
                args_sha256: mcpk_session::sha256_hex(b"{}"),
            }],
            tools_unlisted: 0,
            duration_ms: 3,
            status: "ok".to_owned(),
            result_bytes: 1,
            cache: None,
        })
    }

    #[test]
    fn a_sealed_line_is_its_body_plus_the_hash_of_the_body() {
        let line = Line {
            seq: 1,
            time: "2025-01-02T03:04:05.678Z".to_owned(),
            entry: Entry::Dropped { dropped: 2 },
            prev: GENESIS.to_owned(),
        };
        let (bytes, hash) = seal(&line);
        let body = format!(
            r#"{{"seq":1,"time":"2025-01-02T03:04:05.678Z","event":"dropped","dropped":2,"prev":"{GENESIS}"}}"#
        );
        assert_eq!(hash, mcpk_session::sha256_hex(body.as_bytes()));
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!(
                "{}{}",
                &body[..body.len() - 1],
                format_args!(r#","hash":"{hash}"}}"#)
            )
        );
        assert_eq!(unseal(&bytes), Ok((line, hash)));
    }

    #[test]
    fn any_changed_byte_is_detected() {
        let line = Line {
            seq: 7,
            time: now(),
            entry: execute("acme"),
            prev: GENESIS.to_owned(),
        };
        let (bytes, _) = seal(&line);
        assert!(unseal(&bytes).is_ok());
        let text = String::from_utf8(bytes).unwrap();
        for (from, to) in [
            ("\"acme\"", "\"acmf\""),
            ("\"seq\":7", "\"seq\":8"),
            ("\"prev\":\"0", "\"prev\":\"1"),
            ("\"duration_ms\":3", "\"duration_ms\": 3"),
        ] {
            let altered = text.replacen(from, to, 1);
            assert_ne!(altered, text);
            assert_eq!(
                unseal(altered.as_bytes()),
                Err(Unsealed::Altered),
                "{from} → {to}"
            );
        }
        assert!(matches!(
            unseal(b"{\"seq\":1}"),
            Err(Unsealed::Malformed(_))
        ));
    }

    #[test]
    fn times_are_utc_with_milliseconds_and_any_offset_parses() {
        let at = parse_time("2025-01-02T04:04:05.6789+01:00").unwrap();
        assert_eq!(format_time(at), "2025-01-02T03:04:05.678Z");
        assert_eq!(
            format_time(parse_time("2025-01-02T03:04:05Z").unwrap()),
            "2025-01-02T03:04:05.000Z"
        );
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn the_chain_end_is_read_from_the_tail() {
        let dir = std::env::temp_dir().join(format!("mcpk-audit-line-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        assert_eq!(chain_end(&path), Ok(ChainEnd::genesis()));
        let mut prev = ChainEnd::genesis();
        let mut file = Vec::new();
        for seq in 1..=3 {
            let (bytes, hash) = seal(&Line {
                seq,
                time: now(),
                entry: execute("t"),
                prev: prev.hash.clone(),
            });
            file.extend_from_slice(&bytes);
            file.push(b'\n');
            prev = ChainEnd { seq, hash };
        }
        std::fs::write(&path, &file).unwrap();
        assert_eq!(chain_end(&path), Ok(prev));
        file.pop();
        std::fs::write(&path, &file).unwrap();
        assert!(chain_end(&path).unwrap_err().contains("incomplete"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
