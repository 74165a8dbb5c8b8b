//! What one `execute` call produced, as seen by the supervisor.

use serde::{Deserialize, Serialize};

use crate::protocol::ToolRef;
use crate::state::StateAccess;

/// The console method a log line came from.
///
/// JSON shape: `"log" | "info" | "warn" | "error" | "debug"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `console.log`
    Log,
    /// `console.info`
    Info,
    /// `console.warn`
    Warn,
    /// `console.error`
    Error,
    /// `console.debug`
    Debug,
}

/// One captured console line.
///
/// JSON shape: `{"level": "log", "message": "..."}`. Lone UTF-16 surrogates in the message are
/// written as `\uXXXX` escapes, since a Rust `String` (and a JSON-RPC message) must be valid
/// UTF-8. When the per-call log budget (`max_log_bytes`) is spent, one last line with level
/// `warn` says how many bytes were dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The console method used.
    pub level: LogLevel,
    /// The formatted arguments, joined by single spaces.
    pub message: String,
}

/// The error classes a call can end with. The name is what the agent sees as `error.name`.
///
/// JS errors thrown by user code keep their own name (`TypeError`, a custom class name, ...)
/// and are reported as [`ErrorKind::Js`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The user's code threw or rejected; the payload is the JS error's `name`.
    Js(String),
    /// The call ran past its wall-clock `timeout_ms`; the worker was killed.
    Timeout,
    /// The worker failed an allocation under its `memory_mib` address-space limit.
    MemoryLimit,
    /// The result could not be serialised (BigInt, cycle, too deep).
    Serialization,
    /// `mcp.state` could not be committed: not a JSON-serialisable plain object.
    State,
    /// `mcp.state` serialised to more than `max_state_bytes`.
    StateLimit,
    /// The worker died for another reason (signal, native stack overflow, protocol fault).
    Internal,
}

impl ErrorKind {
    /// The `name` reported to the agent: the JS error's own name, or one of `TimeoutError`,
    /// `MemoryLimitError`, `SerializationError`, `StateError`, `StateLimitError`, `InternalError`.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            ErrorKind::Js(name) => name,
            ErrorKind::Timeout => "TimeoutError",
            ErrorKind::MemoryLimit => "MemoryLimitError",
            ErrorKind::Serialization => "SerializationError",
            ErrorKind::State => "StateError",
            ErrorKind::StateLimit => "StateLimitError",
            ErrorKind::Internal => "InternalError",
        }
    }
}

/// A failed call: the error, where it came from, and whether `mcp.state` was rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallError {
    /// The error class; [`ErrorKind::name`] gives its reported name.
    pub kind: ErrorKind,
    /// The human-readable message. For rolled-back calls it ends with a sentence saying so.
    pub message: String,
    /// The JS stack, when the engine had one.
    pub stack: Option<String>,
}

/// A successful call's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallValue {
    /// The result as JSON text, exactly as the engine's `JSON.stringify` wrote it (`undefined`
    /// becomes `null`). Lone surrogates stay as `\uXXXX` escapes. When longer than
    /// `max_result_bytes` it is cut at that many bytes (on a char boundary).
    pub json: String,
    /// `Some(total_bytes)` when `json` was truncated to `max_result_bytes`.
    pub truncated_from_bytes: Option<usize>,
    /// Whether the call read or wrote `mcp.state` (a result that read nothing from it depends
    /// on the code and the upstreams only).
    pub state_access: StateAccess,
}

/// Everything one call produced: its result or error, and the logs printed before it ended
/// (including those printed before a timeout or crash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    /// The value, or the error with `mcp.state` already rolled back.
    pub result: Result<CallValue, CallError>,
    /// Console output, in order, bounded by `max_log_bytes`.
    pub logs: Vec<LogEntry>,
}

/// Most distinct upstream tools an [`Effects`] lists; past it, `tools_truncated` is set.
pub const MAX_EFFECTS_TOOLS: usize = 256;

/// What a call did that a cached answer could not reproduce, recorded by the worker as the
/// call ran (never guessed from the source). A flag the worker could not read counts as set;
/// a call whose worker was lost (deadline, crash) reports the default, all clear, but such a
/// call has failed, and failed calls are never cached.
///
/// JSON: `{"time": bool, "random": bool, "timers": bool, "tools": [{"server", "tool"}],
/// "tools_truncated": bool, "host_ops": ["list_tools", …]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effects {
    /// The call read the clock: `Date.now()`, `Date()` called as a function, `new Date()`
    /// with no argument (also through `Reflect.construct` or a subclass's `super()`), or
    /// `performance.*` should the engine ever provide it.
    pub time: bool,
    /// The call drew randomness, or depended on something else the engine does not fix:
    /// `Math.random()`, `crypto.*` (should the engine ever provide it), `WeakRef.prototype.deref`
    /// and `new FinalizationRegistry` (their answers depend on garbage-collection timing).
    pub random: bool,
    /// The call started a timer (`setTimeout`; the engine has no `setInterval`).
    /// `queueMicrotask` does not count: its order is deterministic.
    pub timers: bool,
    /// Every upstream tool the call asked the host to call (`servers.*`, `mcp.tools.call`,
    /// and the same from skills), whether or not the call succeeded, deduplicated, in first-use
    /// order, at most [`MAX_EFFECTS_TOOLS`].
    pub tools: Vec<ToolRef>,
    /// More than [`MAX_EFFECTS_TOOLS`] distinct tools were called; `tools` holds the first ones.
    pub tools_truncated: bool,
    /// The other host operations the call used, by their `op` name (`list_tools`,
    /// `search_tools`, `list_resources`, `read_resource`, `skill_save`, `skill_list`,
    /// `skill_get`, `skill_delete`, `session_list`, `session_close`), deduplicated, in
    /// first-use order (bounded by the number of operations). Their answers depend on the
    /// catalogue, on upstream resources, on the skills store or on the session store, and some
    /// change those; the session decides which it can key on.
    pub host_ops: Vec<String>,
}
