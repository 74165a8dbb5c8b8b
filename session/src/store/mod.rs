//! The snapshot store: where a session's committed state and metadata outlive its worker, and
//! where a tenant's skills live.
//!
//! ```text
//! Store ─┬─ Memory(MemoryStore)  embedded default: one process, tokio-time expiry
//!        └─ Redis(RedisStore)    shared by replicas: one Lua script per write
//! ```
//!
//! Concepts, the same in both implementations:
//! - a **snapshot** is a session's committed state (per top-level key, in key order), its
//!   [`SessionMeta`] and a format version ([`SNAPSHOT_FORMAT`]);
//! - **retention**: every commit or touch keeps the snapshot for [`StoreConfig::retention`]
//!   more, and a **tombstone** for [`StoreConfig::tombstone`] (≥ 2× retention), so a name whose
//!   snapshot expired reads as [`Lookup::Expired`] rather than [`Lookup::NotFound`];
//! - a **lease** per session, with a fencing token from a counter that only grows: a commit,
//!   touch or renew checks the token atomically with its write, so a replica whose lease
//!   expired and was taken gets [`StoreError::Fenced`] and writes nothing;
//! - a commit applies a per-key [`StateDelta`]: a one-key change to an 8 MiB state writes one
//!   key, never the whole state;
//! - a per-tenant **index** of sessions by last use answers [`Store::list`] (no scan of the
//!   keyspace);
//! - a per-tenant **skills library** with a version bumped by every save and delete.
//!
//! Redis keys are `<key_prefix>mcpk:v1:<kind>:<tenant>[:<name>]`: `snap` (hash: state fields
//! `v:<key JSON>` and their positions `o:<key JSON>`, plus meta fields), `tomb`, `lease`,
//! `idx` (sorted set name → last use), `skills` (hash name → [`StoredSkill`] JSON),
//! `skillver` (counter), and one `<key_prefix>mcpk:v1:fence` counter for all leases.

use std::time::Duration;

use mcpk_kernel::{CommittedState, StateDelta};
use serde::{Deserialize, Serialize};

use crate::key::{KeyError, SessionKey, valid_tenant};

mod memory;
mod redis;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// Version of the snapshot layout written by this build; a snapshot of another version is
/// refused with [`StoreError::Format`] rather than misread.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// What a session's snapshot says about it besides its state.
///
/// JSON: `{"created_ms", "last_used_ms", "state_bytes", "generation"}`, all integers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    /// When the session was first stored, unix ms. Kept from the first commit or touch.
    pub created_ms: u64,
    /// When the session last ran a call, unix ms, as the caller gave it.
    pub last_used_ms: u64,
    /// Size of the committed state as one JSON object text
    /// ([`CommittedState::json_bytes`]), in bytes. Computed by the store (the value given to
    /// [`Store::commit`] is not used).
    pub state_bytes: u64,
    /// Commits so far. Computed by the store, which adds one per commit (the value given to
    /// [`Store::commit`] is not used; a caller that holds the lease and was current at
    /// acquire time computes the same).
    pub generation: u64,
}

/// A stored session: its state, metadata, and the layout version it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Layout version; always [`SNAPSHOT_FORMAT`] for a snapshot that loaded.
    pub format: u32,
    /// Times, size and generation.
    pub meta: SessionMeta,
    /// The committed `mcp.state`, in key order.
    pub state: CommittedState,
}

/// What [`Store::load`] found for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The snapshot is there.
    Found(Snapshot),
    /// The snapshot expired but its tombstone is still there: the session existed.
    Expired,
    /// Neither snapshot nor tombstone: the session never existed, was closed, or expired so
    /// long ago that its tombstone is gone too.
    NotFound,
}

/// The right to commit one session, until [`StoreConfig::lease_ttl`] after it was acquired or
/// last renewed (commit, touch and [`Store::renew`] renew it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Fencing token: unique, and greater than every token issued before it by this store.
    pub token: u64,
    /// The snapshot's [`SessionMeta::generation`] when the lease was acquired (0 when there is
    /// no snapshot). A replica whose live worker has committed fewer generations is stale and
    /// must restore from the snapshot.
    pub generation: u64,
    /// The tenant's skills library version when the lease was acquired (read in the same
    /// round trip, so a call needs no separate look-up).
    pub skills_version: u64,
}

/// An upstream tool a skill calls, with the hash of the tool's schema when the skill was saved.
///
/// JSON: `{"server", "tool", "schema_sha256": hex | null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSchema {
    /// Upstream server name.
    pub server: String,
    /// Tool name on that server.
    pub tool: String,
    /// Lowercase hex SHA-256 of the tool's input schema at save time; `None` when the tool was
    /// unknown then.
    pub schema_sha256: Option<String>,
}

/// A saved skill, as stored for its tenant.
///
/// JSON (the Redis value): `{"revision", "created_ms", "name", "description", "source",
/// "params", "tools", "updated_ms"}`, in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSkill {
    /// Times this skill has been saved, 1 for the first save. Set by the store.
    pub revision: u64,
    /// First save, unix ms. The store keeps the first save's value.
    pub created_ms: u64,
    /// `^[A-Za-z_$][A-Za-z0-9_$]{0,63}$` (checked by the kernel, not here).
    pub name: String,
    /// What the skill does, as the agent described it.
    pub description: String,
    /// The function expression's source text.
    pub source: String,
    /// Formal parameter names.
    pub params: Vec<String>,
    /// Upstream tools the source calls literally.
    pub tools: Vec<ToolSchema>,
    /// Last save, unix ms.
    pub updated_ms: u64,
}

/// Infrastructure failures of the store. Messages name the session, limit or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The state after the commit would exceed `max_snapshot_bytes`; nothing was written.
    #[error(
        "session {session}: state of {bytes} bytes exceeds max_snapshot_bytes={max_snapshot_bytes}"
    )]
    TooLarge {
        /// The session.
        session: SessionKey,
        /// Size the state would have had, as JSON text, in bytes.
        bytes: u64,
        /// The configured cap.
        max_snapshot_bytes: usize,
    },
    /// The lease with this token is no longer held (it expired, and maybe another replica
    /// took it, or the session was deleted); nothing was written.
    #[error(
        "session {session} lost its lease (token {token}) during the call: it was closed, or the call outlived the lease while this replica stalled; nothing was written, retry the call"
    )]
    Fenced {
        /// The session.
        session: SessionKey,
        /// The stale token.
        token: u64,
    },
    /// Another holder kept the session's lease until the caller's deadline.
    #[error(
        "session {session} is busy: a call on it is running here or on another replica (its lease was held for the {} ms this call could wait; a lease lapses by itself at most lease_ttl after its holder stops)",
        waited.as_millis()
    )]
    Busy {
        /// The session.
        session: SessionKey,
        /// How long [`Store::acquire`] waited before giving up (from its start to the
        /// deadline or just past it).
        waited: Duration,
    },
    /// The memory store already keeps `max_sessions_stored` unexpired snapshots.
    #[error("snapshot store full: max_sessions_stored={max_sessions_stored} snapshots are kept")]
    Full {
        /// The configured limit.
        max_sessions_stored: usize,
    },
    /// The tenant already has `max_skills_per_tenant` skills and this save adds a new one.
    #[error("tenant {tenant} already has max_skills_per_tenant={max_skills_per_tenant} skills")]
    TooManySkills {
        /// The tenant.
        tenant: String,
        /// The configured limit.
        max_skills_per_tenant: usize,
    },
    /// The tenant does not match its pattern (a [`SessionKey`] built by hand): refused, since
    /// a `:` in it could make two tenants' keys meet.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The backend failed: Redis unreachable, timed out, or refused a command.
    #[error("snapshot store backend: {0}")]
    Backend(String),
    /// A stored record could not be read: another format version, or damaged.
    #[error("{what}: unreadable stored record: {detail}")]
    Format {
        /// The session (`tenant/name`) or skill (`tenant skill name`) concerned.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

/// Limits and lifetimes of a store. Plain data: the caller validates flags into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Put before every Redis key, which then reads `<key_prefix>mcpk:v1:…` (default empty;
    /// tests use a unique one). Unused by the memory store.
    pub key_prefix: String,
    /// How long a snapshot is kept after its last commit or touch (default 7 days).
    pub retention: Duration,
    /// How long a tombstone is kept after the last commit or touch (default 14 days). Raised to
    /// 2× `retention` when smaller, so an expired name stays recognisable at least as long
    /// again as its snapshot was kept.
    pub tombstone: Duration,
    /// Largest committed state, as one JSON object text, in bytes (default 16 MiB). Metadata is
    /// not counted (it is under 200 bytes).
    pub max_snapshot_bytes: usize,
    /// How long a lease lasts after it was acquired or last renewed (default 30 s). A holder
    /// whose call may run longer renews it ([`Store::renew`]); commit and touch renew it too.
    pub lease_ttl: Duration,
    /// Unexpired snapshots the memory store keeps (default 100 000), and separately its
    /// tombstones: when the tombstones are full, the one that would expire first is dropped
    /// (its name then reads as never existed). Not applied to Redis, whose memory is bounded
    /// by its own `maxmemory`.
    pub max_sessions_stored: usize,
    /// Skills one tenant may keep (default 1 000); saving a new one beyond it is refused,
    /// replacing an existing one is not.
    pub max_skills_per_tenant: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            key_prefix: String::new(),
            retention: Duration::from_secs(7 * 24 * 3600),
            tombstone: Duration::from_secs(14 * 24 * 3600),
            max_snapshot_bytes: 16 * 1024 * 1024,
            lease_ttl: Duration::from_secs(30),
            max_sessions_stored: 100_000,
            max_skills_per_tenant: 1_000,
        }
    }
}

impl StoreConfig {
    /// The tombstone lifetime in force: at least twice the retention.
    #[must_use]
    pub fn effective_tombstone(&self) -> Duration {
        self.tombstone.max(self.retention.saturating_mul(2))
    }
}

/// Both implementations; an enum so callers need no `dyn` or async-trait.
#[derive(Debug)]
pub enum Store {
    /// In this process only.
    Memory(MemoryStore),
    /// In Redis, shared by every replica that uses the same URL and key prefix.
    Redis(RedisStore),
}

/// Refuses a tenant outside `^[A-Za-z0-9_.-]{1,64}$` before it reaches a key.
fn check_tenant(tenant: &str) -> Result<(), StoreError> {
    if valid_tenant(tenant) {
        Ok(())
    } else {
        Err(KeyError::Tenant {
            tenant: tenant.to_owned(),
        }
        .into())
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Memory($s) => $e,
            Store::Redis($s) => $e,
        }
    };
}

impl Store {
    /// An empty in-memory store.
    #[must_use]
    pub fn memory(config: StoreConfig) -> Self {
        Self::Memory(MemoryStore::new(config))
    }

    /// A store in the Redis at `url` (`redis://[:password@]host:port[/db]`), connected now.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the URL does not parse or Redis does not answer.
    pub async fn redis(url: &str, config: StoreConfig) -> Result<Self, StoreError> {
        Ok(Self::Redis(RedisStore::connect(url, config).await?))
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &StoreConfig {
        dispatch!(self, s => s.config())
    }

    /// The session's snapshot, or whether it expired or never existed. Reads only: retention
    /// is not refreshed (a commit or touch does that).
    ///
    /// # Errors
    /// [`StoreError::Backend`]; [`StoreError::Format`] for a snapshot this build cannot read.
    pub async fn load(&self, key: &SessionKey) -> Result<Lookup, StoreError> {
        check_tenant(&key.tenant)?;
        dispatch!(self, s => s.load(key).await)
    }

    /// Takes the session's lease, waiting (polling with backoff, or woken by a release in the
    /// same process) while another holder has it.
    ///
    /// # Errors
    /// [`StoreError::Busy`] when it is still held at `wait_until`; [`StoreError::Backend`].
    pub async fn acquire(
        &self,
        key: &SessionKey,
        wait_until: tokio::time::Instant,
    ) -> Result<Lease, StoreError> {
        check_tenant(&key.tenant)?;
        dispatch!(self, s => s.acquire(key, wait_until).await)
    }

    /// Extends the lease by [`StoreConfig::lease_ttl`] from now.
    ///
    /// # Errors
    /// [`StoreError::Fenced`] when the lease is no longer held; [`StoreError::Backend`].
    pub async fn renew(&self, key: &SessionKey, lease: &Lease) -> Result<(), StoreError> {
        check_tenant(&key.tenant)?;
        dispatch!(self, s => s.renew(key, lease).await)
    }

    /// Applies one call's per-key `delta` to the stored state, atomically with a check of the
    /// lease's token; creates the snapshot if there is none. Takes `created_ms` (first commit
    /// only) and `last_used_ms` from `meta`; computes `state_bytes` and `generation` (one more)
    /// itself. Refreshes the snapshot's retention, the tombstone, the tenant index and the
    /// lease.
    ///
    /// # Errors
    /// [`StoreError::Fenced`] (nothing written), [`StoreError::TooLarge`] (nothing written),
    /// [`StoreError::Full`] (memory store), [`StoreError::Backend`].
    pub async fn commit(
        &self,
        key: &SessionKey,
        lease: &Lease,
        delta: &StateDelta,
        meta: &SessionMeta,
    ) -> Result<(), StoreError> {
        check_tenant(&key.tenant)?;
        dispatch!(self, s => s.commit(key, lease, delta, meta).await).map(drop)
    }

    /// Records a use without a state change: `last_used_ms` from `meta` (and `created_ms` when
    /// there is no snapshot yet, which this creates with the state `{}`), retention, tombstone,
    /// index and lease refreshed. Writes only metadata.
    ///
    /// # Errors
    /// As [`Store::commit`], without `TooLarge`.
    pub async fn touch(
        &self,
        key: &SessionKey,
        lease: &Lease,
        meta: &SessionMeta,
    ) -> Result<(), StoreError> {
        check_tenant(&key.tenant)?;
        dispatch!(self, s => s.touch(key, lease, meta).await).map(drop)
    }

    /// [`Store::commit`] (with `delta`) or [`Store::touch`] (without), then [`Store::release`],
    /// in one round trip: the end of a call. Nothing is written, and the lease is kept, when
    /// it fails.
    ///
    /// # Errors
    /// As [`Store::commit`].
    pub async fn finish(
        &self,
        key: &SessionKey,
        lease: &Lease,
        delta: Option<&StateDelta>,
        meta: &SessionMeta,
    ) -> Result<(), StoreError> {
        check_tenant(&key.tenant)?;
        dispatch!(self, s => s.finish(key, lease, delta, meta).await).map(drop)
    }

    /// Gives the lease up if it is still this one's (a lease already lost is not an error).
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn release(&self, key: &SessionKey, lease: &Lease) -> Result<(), StoreError> {
        check_tenant(&key.tenant)?;
        dispatch!(self, s => s.release(key, lease).await)
    }

    /// Closes a session: its snapshot, tombstone, lease and index entry go (a holder's next
    /// commit is [`StoreError::Fenced`]). Returns whether a snapshot was there.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        check_tenant(&key.tenant)?;
        dispatch!(self, s => s.delete(key).await)
    }

    /// Drops the tombstone of an expired name, so the name can start a fresh session.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn forget_tombstone(&self, key: &SessionKey) -> Result<(), StoreError> {
        check_tenant(&key.tenant)?;
        dispatch!(self, s => s.forget_tombstone(key).await)
    }

    /// The tenant's stored sessions, most recently used first, from the per-tenant index
    /// (entries whose snapshot expired are pruned on the way).
    ///
    /// # Errors
    /// [`StoreError::Backend`]; [`StoreError::Format`] for a damaged record.
    pub async fn list(&self, tenant: &str) -> Result<Vec<(String, SessionMeta)>, StoreError> {
        check_tenant(tenant)?;
        dispatch!(self, s => s.list(tenant).await)
    }

    /// Saves (or replaces) a skill and returns the tenant's new library version. The store
    /// sets `revision` (previous + 1, or 1) and keeps the first save's `created_ms`; the
    /// argument's values of both are used only for a first save (`created_ms`).
    ///
    /// # Errors
    /// [`StoreError::TooManySkills`], [`StoreError::Backend`].
    pub async fn skill_save(&self, tenant: &str, skill: StoredSkill) -> Result<u64, StoreError> {
        check_tenant(tenant)?;
        dispatch!(self, s => s.skill_save(tenant, skill).await)
    }

    /// One skill of the tenant, if saved.
    ///
    /// # Errors
    /// [`StoreError::Backend`]; [`StoreError::Format`] for a damaged record.
    pub async fn skill_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<StoredSkill>, StoreError> {
        check_tenant(tenant)?;
        dispatch!(self, s => s.skill_get(tenant, name).await)
    }

    /// The tenant's library version and skills, sorted by name, read together.
    ///
    /// # Errors
    /// [`StoreError::Backend`]; [`StoreError::Format`] for a damaged record.
    pub async fn skill_list(&self, tenant: &str) -> Result<(u64, Vec<StoredSkill>), StoreError> {
        check_tenant(tenant)?;
        dispatch!(self, s => s.skill_list(tenant).await)
    }

    /// Deletes a skill; `Some(new library version)` if it existed, `None` (version unchanged)
    /// if not.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn skill_delete(&self, tenant: &str, name: &str) -> Result<Option<u64>, StoreError> {
        check_tenant(tenant)?;
        dispatch!(self, s => s.skill_delete(tenant, name).await)
    }

    /// The tenant's library version: 0 before the first save, then one more per save and per
    /// deletion of an existing skill.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn skills_version(&self, tenant: &str) -> Result<u64, StoreError> {
        check_tenant(tenant)?;
        dispatch!(self, s => s.skills_version(tenant).await)
    }

    /// Whether the store answers: always for memory; a Redis `PING` within
    /// [`PING_TIMEOUT`] for Redis.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when Redis fails or does not answer in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(s) => tokio::time::timeout(PING_TIMEOUT, s.ping())
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Backend(format!(
                        "no answer to PING within {PING_TIMEOUT:?}"
                    )))
                }),
        }
    }

    /// Bytes the session's snapshot and tombstone use in Redis (`MEMORY USAGE`, exact for the
    /// hash), for the footprint benchmark; `None` for the memory store or when there is no
    /// snapshot.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn footprint(&self, key: &SessionKey) -> Result<Option<u64>, StoreError> {
        check_tenant(&key.tenant)?;
        match self {
            Store::Memory(_) => Ok(None),
            Store::Redis(s) => s.footprint(key).await,
        }
    }
}

/// Longest wait for Redis to answer a readiness `PING`.
pub(crate) const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Running size of a state: `sum` = Σ (key bytes + value bytes + 1) and `count` = keys, from
/// which [`CommittedState::json_bytes`] follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StateSize {
    pub(crate) sum: u64,
    pub(crate) count: u64,
}

impl StateSize {
    /// Bytes of the state as one JSON object text: `{k:v,k:v}`.
    pub(crate) fn json_bytes(self) -> u64 {
        self.sum + self.count.saturating_sub(1) + 2
    }

    /// The size after `delta`, given the current value length of a key (`None` if absent).
    /// Mirrors the first pass of the Redis commit script.
    pub(crate) fn after(self, delta: &StateDelta, old_len: impl Fn(&str) -> Option<usize>) -> Self {
        let mut size = if delta.replace { Self::default() } else { self };
        let mut seen: std::collections::HashMap<&str, Option<usize>> =
            std::collections::HashMap::new();
        for (k, v) in &delta.changes {
            let old = match seen.get(k.as_str()) {
                Some(old) => *old,
                None if delta.replace => None,
                None => old_len(k),
            };
            if let Some(old) = old {
                size.sum -= (k.len() + old + 1) as u64;
                size.count -= 1;
            }
            if let Some(v) = v {
                size.sum += (k.len() + v.len() + 1) as u64;
                size.count += 1;
            }
            seen.insert(k, v.as_ref().map(String::len));
        }
        size
    }
}

#[cfg(test)]
mod tests;
