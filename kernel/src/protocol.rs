//! The worker ↔ supervisor protocol: length-delimited frames carrying JSON-encoded, closed
//! request/response enums.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON. The worker
//! announces [`PROTOCOL_VERSION`] in its first frame ([`FromWorker::Ready`]); the supervisor
//! refuses a worker that speaks another version.
//!
//! Sequence for one worker:
//! ```text
//! supervisor                         worker
//!   Init{version, limits}  ───────▶    (rlimits, landlock, Context, seccomp)
//!                          ◀───────  Ready{version, pid}
//!   Restore{state}         ───────▶                       (optional, when a session resumes)
//!                          ◀───────  Restored | Failed
//!   Execute{id, code,      ───────▶                       (skills: the library when the
//!           skills}                                        worker's is stale, else None)
//!                          ◀───────  Log{..}* Progress{..}* HostCall{..}*
//!   HostReply{call, ..}    ───────▶                       (any order, many in flight)
//!                          ◀───────  Done{..} | Failed{..}   (both name the skills used)
//!   Shutdown               ───────▶  (exits)
//! ```
//! Cancellation is not a message: the supervisor kills the worker process, the only mechanism
//! that also stops a native call or a loop that never yields.

use serde::{Deserialize, Serialize};

use crate::outcome::{CallError, Effects, LogEntry};
use crate::state::{StateAccess, StateDelta};

/// Version of this protocol; bumped on any incompatible change to the enums below.
pub(crate) const PROTOCOL_VERSION: u32 = 4;

/// Largest frame either side accepts, in bytes: room for an 8 MiB state, JSON-escaped.
/// [`KernelConfig::worst_case_frame_bytes`](crate::KernelConfig::worst_case_frame_bytes) must
/// stay within it; the server refuses limits that do not at start-up.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Largest host call (its arguments as JSON) and largest host reply, in bytes. Bigger ones are
/// refused with an error naming the size, so no frame ever exceeds [`MAX_FRAME_BYTES`].
pub(crate) const MAX_HOST_MESSAGE_BYTES: usize = 32 << 20;

/// Largest source text of one skill, in bytes of UTF-8: `mcp.skills.save` refuses a bigger
/// one with a `RangeError` naming this limit, in the worker, before any host call. It bounds
/// what one save stores, not the library as a whole (that is bounded by the frame that
/// carries it, see [`Worker::execute`](crate::Worker::execute)).
pub const MAX_SKILL_SOURCE_BYTES: usize = 64 << 10;

/// Whether `name` is a valid skill name: `^[A-Za-z_$][A-Za-z0-9_$]{0,63}$`, an ASCII
/// JavaScript identifier of at most 64 characters, so `skills.<name>` always works.
#[must_use]
pub fn is_skill_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$';
    matches!(bytes.first(), Some(b) if word(b) && !b.is_ascii_digit())
        && bytes.len() <= 64
        && bytes.iter().all(word)
}

/// An upstream tool a skill's source refers to literally (`servers.A.B`, `servers['A']['B']`,
/// `mcp.tools.call('A', 'B', …)`).
///
/// JSON: `{"server": "A", "tool": "B"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ToolRef {
    /// Upstream server name.
    pub server: String,
    /// Tool name on that server.
    pub tool: String,
}

/// One skill of a [`SkillLibrary`]: its name (see [`is_skill_name`]) and its source text, one
/// JavaScript function expression, as `mcp.skills.save` checked it.
///
/// JSON: `{"name": "…", "source": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillSource {
    /// The name code calls it by: `skills.<name>(…)`.
    pub name: String,
    /// The function expression, e.g. `async (owner) => …`.
    pub source: String,
}

/// A tenant's skills as a worker sees them (`skills.<name>`), at one library version.
///
/// JSON: `{"version": 3, "skills": [SkillSource, …]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillLibrary {
    /// The library version this is (the store bumps it on every save and delete).
    pub version: u64,
    /// Every skill of the library, in any order; names are unique.
    pub skills: Vec<SkillSource>,
}

/// Limits the worker enforces on itself. Units are in the field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WorkerLimits {
    /// Address-space limit (`RLIMIT_AS`) of the worker process, in MiB.
    pub(crate) memory_mib: u64,
    /// Console bytes captured per call before the truncation marker.
    pub(crate) max_log_bytes: usize,
    /// Largest committed `mcp.state`, as JSON text, in bytes.
    pub(crate) max_state_bytes: usize,
    /// Result JSON longer than this is cut to this many bytes.
    pub(crate) max_result_bytes: usize,
    /// Deepest object/array nesting accepted in results and state.
    pub(crate) max_json_depth: u32,
    /// Host calls of one execution sent and not yet answered; later calls wait in the worker,
    /// in call order, until an answer frees a slot.
    pub(crate) max_host_calls_in_flight: usize,
}

/// The frame codec both ends use: a 4-byte big-endian length, then at most
/// [`MAX_FRAME_BYTES`] bytes.
pub(crate) fn codec() -> tokio_util::codec::LengthDelimitedCodec {
    tokio_util::codec::LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// Supervisor → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub(crate) enum ToWorker {
    /// First frame: the protocol version the supervisor speaks and the limits to apply.
    Init { version: u32, limits: WorkerLimits },
    /// Replace `mcp.state` with a committed state (a session resuming on this worker). The
    /// entries travel in the next frame as raw UTF-8, not JSON-escaped (escaping and
    /// unescaping a megabyte of JSON text cost more than the rest of a restore): each key (a
    /// JSON string literal) then its value (JSON text), in key order, with their byte lengths
    /// here.
    Restore { sizes: Vec<(usize, usize)> },
    /// Run `code` as the body of an async function. `skills`, when set, replaces the worker's
    /// skills library before the code runs; `None` keeps the one it has. `servers` are the
    /// upstream server names `servers` lists during this call.
    Execute {
        id: u64,
        code: String,
        skills: Option<SkillLibrary>,
        #[serde(default)]
        servers: Vec<String>,
    },
    /// The answer to [`FromWorker::HostCall`] number `call`.
    HostReply {
        call: u64,
        result: Result<serde_json::Value, String>,
    },
    /// Exit cleanly.
    Shutdown,
}

/// How much of each tool a catalogue listing carries.
///
/// JSON: `"names" | "signatures" | "full"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// `{server, name}`.
    Names,
    /// `{server, name, signature, description}` with a one-line TypeScript-style signature.
    #[default]
    Signatures,
    /// Everything: title, full description, signature, input/output schema, annotations.
    Full,
}

/// A request from sandboxed code that only the supervisor can answer.
///
/// JSON: `{"op": "<snake_case variant>", ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostOp {
    /// `mcp.tools.list({server, detail})`: the tool catalogue, optionally for one server.
    ListTools {
        /// Only this server's tools, when set.
        server: Option<String>,
        /// Detail level (default `signatures`).
        #[serde(default)]
        detail: Detail,
    },
    /// `mcp.tools.search(query, {server, detail, limit})`: ranked search over names and
    /// descriptions.
    SearchTools {
        /// Free-text query.
        query: String,
        /// Only this server's tools, when set.
        server: Option<String>,
        /// Detail level (default `signatures`).
        #[serde(default)]
        detail: Detail,
        /// Most results to return.
        limit: Option<u32>,
    },
    /// `mcp.tools.call(server, tool, args)` and `servers.<server>.<tool>(args)`.
    CallTool {
        /// Upstream server name.
        server: String,
        /// Tool name on that server.
        tool: String,
        /// Arguments object.
        args: serde_json::Value,
    },
    /// `mcp.resources.list()`.
    ListResources,
    /// `mcp.resources.read(uri, {server})`.
    ReadResource {
        /// Resource URI.
        uri: String,
        /// The server to ask; found from the resource lists when absent.
        server: Option<String>,
    },
    /// `mcp.skills.save(name, fnOrSource, {description})`, checked by the worker first (name,
    /// size, one function expression). Reply: `{"name": …, "version": <library version>}`.
    SkillSave {
        /// The skill's name (see [`is_skill_name`]).
        name: String,
        /// Its source: one function expression, at most [`MAX_SKILL_SOURCE_BYTES`].
        source: String,
        /// The `description` option, or `""`.
        description: String,
        /// Its formal parameters: a name, `...name` for a rest parameter, `{…}` or `[…]` for
        /// a destructuring pattern (`...{…}`, `...[…]` when rest).
        params: Vec<String>,
        /// The upstream tools its source names literally, first occurrence first, without
        /// repeats.
        tools: Vec<ToolRef>,
    },
    /// `mcp.skills.list()`. Reply: `[{name, description, params, tools: [{server, tool}],
    /// revision, created_ms, updated_ms}]`.
    SkillList,
    /// `mcp.skills.get(name)`. Reply: the `SkillList` object of that skill plus `"source"`,
    /// or `null` when there is none.
    SkillGet {
        /// The skill's name (see [`is_skill_name`]).
        name: String,
    },
    /// `mcp.skills.delete(name)`. Reply: `true` when the skill existed, else `false`.
    SkillDelete {
        /// The skill's name (see [`is_skill_name`]).
        name: String,
    },
    /// `mcp.sessions.list()`: the tenant's sessions. Reply: `[{name, last_used_ms,
    /// state_bytes, live}]`.
    SessionList,
    /// `mcp.sessions.close(name)`: ends a session of the tenant (its worker and snapshot).
    /// Reply: `true` when it existed, else `false`.
    SessionClose {
        /// The session's name.
        name: String,
    },
}

impl HostOp {
    /// The operation's `op` name in JSON, e.g. `call_tool`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::ListTools { .. } => "list_tools",
            Self::SearchTools { .. } => "search_tools",
            Self::CallTool { .. } => "call_tool",
            Self::ListResources => "list_resources",
            Self::ReadResource { .. } => "read_resource",
            Self::SkillSave { .. } => "skill_save",
            Self::SkillList => "skill_list",
            Self::SkillGet { .. } => "skill_get",
            Self::SkillDelete { .. } => "skill_delete",
            Self::SessionList => "session_list",
            Self::SessionClose { .. } => "session_close",
        }
    }
}

/// Worker → supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub(crate) enum FromWorker {
    /// The worker is sandboxed and its Context is built; it accepts `Restore` and `Execute`.
    Ready { version: u32, pid: u32 },
    /// `Restore` applied.
    Restored,
    /// A console line of call `id`.
    Log { id: u64, entry: LogEntry },
    /// `mcp.progress(fraction, message)` of call `id`: `fraction` is in `[0, 1]`.
    Progress {
        id: u64,
        fraction: f64,
        message: String,
    },
    /// Sandboxed code of call `id` needs the host; answer with `HostReply{call}`.
    HostCall { id: u64, call: u64, op: HostOp },
    /// Call `id` succeeded. `state` holds the top-level keys of `mcp.state` it changed, or is
    /// `None` when it changed none; `access` says whether it read or wrote `mcp.state`;
    /// `skills_used` names the skills the call looked up (see `Execution::skills_used`);
    /// `effects` is what it did that a cached answer could not reproduce (see [`Effects`]).
    Done {
        id: u64,
        result: String,
        truncated_from_bytes: Option<usize>,
        state: Option<StateDelta>,
        access: StateAccess,
        skills_used: Vec<String>,
        effects: Effects,
    },
    /// Call `id` (or a `Restore`, with id 0) failed; `mcp.state` is back at its last committed
    /// value. `poisoned` means the engine hit a runtime limit that can leave the Context
    /// damaged, so the supervisor must replace this worker. `skills_used` and `effects` as in
    /// `Done`.
    Failed {
        id: u64,
        error: CallError,
        poisoned: bool,
        skills_used: Vec<String>,
        effects: Effects,
    },
}
