//! Sessions: the home of a call's lifecycle. Each agent session owns one kernel worker while
//! it is live, runs its calls one at a time in arrival order, commits each call's `mcp.state`
//! change to a [`Store`] before the call's result is returned, hibernates when idle, and
//! expires after a retention TTL. Saved skills live here too, per tenant.
//!
//! ```text
//! api ── execute(SessionKey, Call) ──▶ SessionManager ── live? ──▶ Session (FIFO lock)
//!                                         │ no: Store.load ─▶ Found / Expired / NotFound
//!                                         ▼
//!                              Store.acquire (lease + fencing token)
//!                              Worker.execute(code, Router)  ◀── host calls ──▶ Router
//!                              Store.commit(delta) · release          skills, sessions ▶ Store
//!                                                                     tools ▶ dyn Tools (api)
//! ```
//! Different sessions never wait on each other: each has its own lock and its own process.
//!
//! `api` depends on this crate only; what it needs of the kernel (its configuration, the
//! worker entry points, call outcomes) is re-exported here.

mod cached;
mod flight;
mod host;
mod key;
mod manager;
mod router;
mod store;
mod tokens;
mod tool_calls;

pub use host::NoUpstreams;
pub use key::{
    CONNECTION_NAME_PREFIX, KeyError, MAX_SESSION_NAME_BYTES, MAX_TENANT_BYTES, SessionKey,
};
pub use manager::{
    Answer, CacheMode, Call, DEFAULT_SESSION, HIBERNATIONS_TOTAL, QUEUE_DEPTH, SessionConfig,
    SessionError, SessionInfo, SessionManager, SessionMode, WORKER_DEATHS_TOTAL, resolve_name,
};
pub use mcpk_cache::{CacheConfig, TieredCache, describe_metrics as describe_cache_metrics};
pub use mcpk_kernel::WORKER_STARTS_TOTAL;
pub use router::{ProgressSink, Tools};
pub use store::{
    Lease, Lookup, MemoryStore, RedisStore, SNAPSHOT_FORMAT, SessionMeta, Snapshot, Store,
    StoreConfig, StoreError, StoredSkill, ToolSchema,
};
pub use tokens::estimate_tokens;
pub use tool_calls::{
    MAX_LISTED_TOOL_CALLS, MAX_TOOL_NAME_BYTES, ToolCall, ToolCalls, canonical_json, sha256_hex,
};

pub use mcpk_kernel::{
    CallError, CallOutcome, CallValue, ChildSet, CommittedState, Detail, ErrorKind, HostFuture,
    HostOp, KernelConfig, KernelError, LogEntry, LogLevel, MAX_FRAME_BYTES, ProbeAttempt, Progress,
    StateAccess, StateDelta, WorkerFault, run_sandbox_probe, run_worker, seccomp_allowlist,
    stderr_lines,
};
