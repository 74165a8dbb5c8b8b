//! The Redis store: shared by every replica on the same Redis and key prefix. Each write is
//! one Lua script, so the fencing check and the write are atomic; reads are one round trip.
//!
//! A session is one hash `…:snap:<tenant>:<name>`: `v:<key JSON>` → value JSON and
//! `o:<key JSON>` → position (ascending = key order; new keys take `seq + 1`), plus the meta
//! fields `format`, `created_ms`, `last_used_ms`, `state_bytes`, `generation` and the running
//! size `sum` / `count`. A commit touches only the changed keys' fields.
//!
//! The scripts reach keys named in `ARGV` (the list script) and assume one Redis, not a
//! cluster.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{RedisError, Script};
use mcpk_kernel::{CommittedState, StateDelta};
use serde::Serialize;
use tokio::time::Instant;

use super::{
    Lease, Lookup, SNAPSHOT_FORMAT, SessionMeta, Snapshot, StoreConfig, StoreError, StoredSkill,
    ToolSchema,
};
use crate::key::SessionKey;

/// Time to open a connection to Redis (including each reconnection attempt).
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to wait for one reply; generous because a commit may carry a 16 MiB state.
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnection attempts before a command fails with [`StoreError::Backend`].
const REDIS_RECONNECT_RETRIES: usize = 3;
/// First and largest pause between two attempts of a contended [`RedisStore::acquire`].
const ACQUIRE_BACKOFF_MIN: Duration = Duration::from_millis(2);
const ACQUIRE_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Snapshots, leases and skills in Redis; see [`super::Store`].
#[derive(Clone)]
pub struct RedisStore {
    pub(super) config: StoreConfig,
    pub(super) con: ConnectionManager,
    /// `<key_prefix>mcpk:v1:`.
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn backend(e: RedisError) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

/// KEYS: lease, fence counter, snap, skills version. ARGV: lease_ttl_ms.
/// Returns `{token, generation, skills_version}`, or `{0, pttl_ms, 0}` while another holds
/// the lease.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1]), 0}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return {token, tonumber(redis.call('HGET', KEYS[3], 'generation') or '0'),
  tonumber(redis.call('GET', KEYS[4]) or '0')}
",
    )
});

/// KEYS: lease. ARGV: token, lease_ttl_ms. Returns 1 if renewed, 0 if not held.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
",
    )
});

/// KEYS: lease. ARGV: token. Deletes the lease only if it is still this token's.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
",
    )
});

/// Commit (with a delta) or touch (`nchanges` = 0, `has_delta` = 0).
///
/// KEYS: snap, tomb, lease, idx.
/// ARGV: 1 token, 2 name, 3 created_ms, 4 last_used_ms, 5 retention_ms, 6 tombstone_ms,
/// 7 lease_ttl_ms, 8 max_snapshot_bytes, 9 format, 10 index cutoff (last use older than this
/// has expired), 11 has_delta, 12 replace, 13 nchanges, 14 norder (-1: none), 15 release (1:
/// delete the lease after writing), then `nchanges` × (key, 's'|'d', value), then `norder`
/// keys.
///
/// Returns `{'ok', created_ms, state_bytes, generation}`, `{'fenced', 0, 0, 0}` or
/// `{'too_large', bytes, 0, 0}`; nothing is written unless 'ok'.
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local snap, tomb, lease, idx = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('GET', lease) ~= ARGV[1] then return {'fenced', 0, 0, 0} end
local has_delta = ARGV[11] == '1'
local replace = ARGV[12] == '1'
local nchanges = tonumber(ARGV[13])
local norder = tonumber(ARGV[14])
local release = ARGV[15] == '1'
local base = 15
local generation = tonumber(redis.call('HGET', snap, 'generation') or '0')
local created = redis.call('HGET', snap, 'created_ms') or ARGV[3]
local sum, count = 0, 0
if not replace then
  sum = tonumber(redis.call('HGET', snap, 'sum') or '0')
  count = tonumber(redis.call('HGET', snap, 'count') or '0')
end
-- Pass 1: the size after the change, before anything is written.
local seen = {}
for i = 0, nchanges - 1 do
  local k, op, v = ARGV[base + 3*i + 1], ARGV[base + 3*i + 2], ARGV[base + 3*i + 3]
  local old = seen[k]
  if old == nil then
    if replace then
      old = false
    else
      local len = redis.call('HSTRLEN', snap, 'v:' .. k)
      if len == 0 then old = false else old = len end
    end
  end
  if old then
    sum = sum - (#k + old + 1)
    count = count - 1
  end
  if op == 's' then
    sum = sum + #k + #v + 1
    count = count + 1
    seen[k] = #v
  else
    seen[k] = false
  end
end
local bytes = sum + math.max(count - 1, 0) + 2
if has_delta and bytes > tonumber(ARGV[8]) then return {'too_large', bytes, 0, 0} end
-- Pass 2: apply.
if replace then redis.call('DEL', snap) end
for i = 0, nchanges - 1 do
  local k, op, v = ARGV[base + 3*i + 1], ARGV[base + 3*i + 2], ARGV[base + 3*i + 3]
  if op == 's' then
    if redis.call('HEXISTS', snap, 'v:' .. k) == 0 then
      redis.call('HSET', snap, 'o:' .. k, redis.call('HINCRBY', snap, 'seq', 1))
    end
    redis.call('HSET', snap, 'v:' .. k, v)
  else
    redis.call('HDEL', snap, 'v:' .. k, 'o:' .. k)
  end
end
if norder >= 0 then
  -- Renumber: the order's keys first, then any key it left out, in its old position order.
  local first = base + 3 * nchanges
  local named = {}
  for i = 1, norder do named[ARGV[first + i]] = true end
  local rest = {}
  for _, f in ipairs(redis.call('HKEYS', snap)) do
    if string.sub(f, 1, 2) == 'o:' and not named[string.sub(f, 3)] then
      table.insert(rest, {tonumber(redis.call('HGET', snap, f)), string.sub(f, 3)})
    end
  end
  table.sort(rest, function(a, b) return a[1] < b[1] end)
  local pos, done = 0, {}
  for i = 1, norder do
    local k = ARGV[first + i]
    if not done[k] and redis.call('HEXISTS', snap, 'v:' .. k) == 1 then
      done[k] = true
      pos = pos + 1
      redis.call('HSET', snap, 'o:' .. k, pos)
    end
  end
  for _, r in ipairs(rest) do
    pos = pos + 1
    redis.call('HSET', snap, 'o:' .. r[2], pos)
  end
  redis.call('HSET', snap, 'seq', pos)
end
if has_delta then generation = generation + 1 end
redis.call('HSET', snap, 'format', ARGV[9], 'created_ms', created, 'last_used_ms', ARGV[4],
  'state_bytes', bytes, 'sum', sum, 'count', count, 'generation', generation)
redis.call('PEXPIRE', snap, ARGV[5])
redis.call('SET', tomb, '1', 'PX', ARGV[6])
if release then
  redis.call('DEL', lease)
else
  redis.call('PEXPIRE', lease, ARGV[7])
end
redis.call('ZADD', idx, ARGV[4], ARGV[2])
redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. ARGV[10])
redis.call('PEXPIRE', idx, ARGV[6])
return {'ok', tonumber(created), bytes, generation}
",
    )
});

/// KEYS: idx. ARGV: snap key prefix (`…:snap:<tenant>:`).
/// Returns `[name, created_ms, last_used_ms, state_bytes, generation, …]`, most recent first,
/// and drops index entries whose snapshot is gone.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for _, name in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local m = redis.call('HMGET', ARGV[1] .. name, 'created_ms', 'last_used_ms', 'state_bytes',
    'generation')
  if m[2] then
    table.insert(out, name)
    for i = 1, 4 do table.insert(out, m[i] or '0') end
  else
    redis.call('ZREM', KEYS[1], name)
  end
end
return out
",
    )
});

/// KEYS: skills hash, version counter. ARGV: name, body JSON (`{…}` without revision and
/// created_ms), created_ms for a first save, max_skills_per_tenant.
/// Returns the new library version, or -1 when the tenant is full.
static SKILL_SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local revision, created = 1, ARGV[3]
if old then
  local r, c = string.match(old, '^{"revision":(%d+),"created_ms":(%d+),')
  if not r then return redis.error_reply('malformed skill record ' .. ARGV[1]) end
  revision = tonumber(r) + 1
  created = c
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1],
  '{"revision":' .. revision .. ',"created_ms":' .. created .. ',' .. string.sub(ARGV[2], 2))
return redis.call('INCR', KEYS[2])
"#,
    )
});

/// KEYS: skills hash, version counter. ARGV: name. New version, or -1 if absent.
static SKILL_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return -1 end
return redis.call('INCR', KEYS[2])
",
    )
});

/// A skill without the two fields the save script sets; serialised, then completed by it.
#[derive(Serialize)]
struct SkillBody<'a> {
    name: &'a str,
    description: &'a str,
    source: &'a str,
    params: &'a [String],
    tools: &'a [ToolSchema],
    updated_ms: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Connects to `url` through a reconnecting [`ConnectionManager`].
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the URL does not parse or Redis does not answer.
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(url).map_err(backend)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
            .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
            .set_number_of_retries(REDIS_RECONNECT_RETRIES);
        let con = ConnectionManager::new_with_config(client, manager)
            .await
            .map_err(backend)?;
        let prefix = format!("{}mcpk:v1:", config.key_prefix);
        Ok(Self {
            config,
            con,
            prefix,
        })
    }

    pub(crate) fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(super) fn session_key(&self, kind: &str, key: &SessionKey) -> String {
        format!("{}{kind}:{}:{}", self.prefix, key.tenant, key.name)
    }

    fn tenant_key(&self, kind: &str, tenant: &str) -> String {
        format!("{}{kind}:{tenant}", self.prefix)
    }

    pub(super) fn con(&self) -> ConnectionManager {
        self.con.clone()
    }

    pub(crate) async fn load(&self, key: &SessionKey) -> Result<Lookup, StoreError> {
        let (fields, tomb): (Vec<(String, String)>, bool) = ::redis::pipe()
            .atomic()
            .hgetall(self.session_key("snap", key))
            .exists(self.session_key("tomb", key))
            .query_async(&mut self.con())
            .await
            .map_err(backend)?;
        if fields.is_empty() {
            return Ok(if tomb {
                Lookup::Expired
            } else {
                Lookup::NotFound
            });
        }
        parse_snapshot(key, fields).map(Lookup::Found)
    }

    pub(crate) async fn acquire(
        &self,
        key: &SessionKey,
        wait_until: Instant,
    ) -> Result<Lease, StoreError> {
        let start = Instant::now();
        let mut backoff = ACQUIRE_BACKOFF_MIN;
        loop {
            let (token, second, skills_version): (u64, i64, u64) = ACQUIRE
                .key(self.session_key("lease", key))
                .key(format!("{}fence", self.prefix))
                .key(self.session_key("snap", key))
                .key(self.tenant_key("skillver", &key.tenant))
                .arg(ms(self.config.lease_ttl))
                .invoke_async(&mut self.con())
                .await
                .map_err(backend)?;
            if token != 0 {
                return Ok(Lease {
                    token,
                    generation: u64::try_from(second).unwrap_or(0),
                    skills_version,
                });
            }
            let now = Instant::now();
            if now >= wait_until {
                return Err(StoreError::Busy {
                    session: key.clone(),
                    waited: now.saturating_duration_since(start),
                });
            }
            // Wait for the backoff, but no longer than the lease has left or the deadline.
            let lease_left = u64::try_from(second)
                .ok()
                .filter(|&ms| ms > 0)
                .map_or(backoff, Duration::from_millis);
            let pause = backoff.min(lease_left);
            tokio::time::sleep_until((now + pause).min(wait_until)).await;
            backoff = (backoff * 2).min(ACQUIRE_BACKOFF_MAX);
        }
    }

    pub(crate) async fn renew(&self, key: &SessionKey, lease: &Lease) -> Result<(), StoreError> {
        let renewed: i64 = RENEW
            .key(self.session_key("lease", key))
            .arg(lease.token)
            .arg(ms(self.config.lease_ttl))
            .invoke_async(&mut self.con())
            .await
            .map_err(backend)?;
        if renewed == 1 {
            Ok(())
        } else {
            Err(StoreError::Fenced {
                session: key.clone(),
                token: lease.token,
            })
        }
    }

    pub(crate) async fn commit(
        &self,
        key: &SessionKey,
        lease: &Lease,
        delta: &StateDelta,
        meta: &SessionMeta,
    ) -> Result<SessionMeta, StoreError> {
        self.write(key, lease, meta, Some(delta), false).await
    }

    pub(crate) async fn touch(
        &self,
        key: &SessionKey,
        lease: &Lease,
        meta: &SessionMeta,
    ) -> Result<SessionMeta, StoreError> {
        self.write(key, lease, meta, None, false).await
    }

    pub(crate) async fn finish(
        &self,
        key: &SessionKey,
        lease: &Lease,
        delta: Option<&StateDelta>,
        meta: &SessionMeta,
    ) -> Result<SessionMeta, StoreError> {
        self.write(key, lease, meta, delta, true).await
    }

    async fn write(
        &self,
        key: &SessionKey,
        lease: &Lease,
        meta: &SessionMeta,
        delta: Option<&StateDelta>,
        release: bool,
    ) -> Result<SessionMeta, StoreError> {
        let config = &self.config;
        let retention_ms = ms(config.retention);
        let mut inv = WRITE.prepare_invoke();
        inv.key(self.session_key("snap", key))
            .key(self.session_key("tomb", key))
            .key(self.session_key("lease", key))
            .key(self.tenant_key("idx", &key.tenant))
            .arg(lease.token)
            .arg(&key.name)
            .arg(meta.created_ms)
            .arg(meta.last_used_ms)
            .arg(retention_ms)
            .arg(ms(config.effective_tombstone()))
            .arg(ms(config.lease_ttl))
            .arg(config.max_snapshot_bytes)
            .arg(SNAPSHOT_FORMAT)
            .arg(meta.last_used_ms.saturating_sub(retention_ms))
            .arg(if delta.is_some() { "1" } else { "0" })
            .arg(if delta.is_some_and(|d| d.replace) {
                "1"
            } else {
                "0"
            });
        match delta {
            Some(delta) => {
                let norder = delta.order.as_ref().map_or(-1, |o| o.len() as i64);
                inv.arg(delta.changes.len())
                    .arg(norder)
                    .arg(u8::from(release));
                for (k, v) in &delta.changes {
                    match v {
                        Some(v) => inv.arg(k).arg("s").arg(v),
                        None => inv.arg(k).arg("d").arg(""),
                    };
                }
                for k in delta.order.iter().flatten() {
                    inv.arg(k);
                }
            }
            None => {
                inv.arg(0).arg(-1).arg(u8::from(release));
            }
        }
        let (status, a, b, c): (String, u64, u64, u64) =
            inv.invoke_async(&mut self.con()).await.map_err(backend)?;
        match status.as_str() {
            "ok" => Ok(SessionMeta {
                created_ms: a,
                last_used_ms: meta.last_used_ms,
                state_bytes: b,
                generation: c,
            }),
            "fenced" => Err(StoreError::Fenced {
                session: key.clone(),
                token: lease.token,
            }),
            "too_large" => Err(StoreError::TooLarge {
                session: key.clone(),
                bytes: a,
                max_snapshot_bytes: config.max_snapshot_bytes,
            }),
            other => Err(StoreError::Backend(format!(
                "redis: unexpected commit reply {other:?}"
            ))),
        }
    }

    pub(crate) async fn release(&self, key: &SessionKey, lease: &Lease) -> Result<(), StoreError> {
        let _: i64 = RELEASE
            .key(self.session_key("lease", key))
            .arg(lease.token)
            .invoke_async(&mut self.con())
            .await
            .map_err(backend)?;
        Ok(())
    }

    pub(crate) async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let (snaps, _, _, _): (u64, u64, u64, u64) = ::redis::pipe()
            .atomic()
            .del(self.session_key("snap", key))
            .del(self.session_key("tomb", key))
            .del(self.session_key("lease", key))
            .zrem(self.tenant_key("idx", &key.tenant), &key.name)
            .query_async(&mut self.con())
            .await
            .map_err(backend)?;
        Ok(snaps > 0)
    }

    pub(crate) async fn forget_tombstone(&self, key: &SessionKey) -> Result<(), StoreError> {
        let _: u64 = ::redis::cmd("DEL")
            .arg(self.session_key("tomb", key))
            .query_async(&mut self.con())
            .await
            .map_err(backend)?;
        Ok(())
    }

    pub(crate) async fn list(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, SessionMeta)>, StoreError> {
        let flat: Vec<String> = LIST
            .key(self.tenant_key("idx", tenant))
            .arg(format!("{}snap:{tenant}:", self.prefix))
            .invoke_async(&mut self.con())
            .await
            .map_err(backend)?;
        let number = |name: &str, s: &str| {
            s.parse::<u64>().map_err(|e| StoreError::Format {
                what: format!("{tenant}/{name}"),
                detail: format!("meta field {s:?}: {e}"),
            })
        };
        flat.chunks_exact(5)
            .map(|c| {
                let meta = SessionMeta {
                    created_ms: number(&c[0], &c[1])?,
                    last_used_ms: number(&c[0], &c[2])?,
                    state_bytes: number(&c[0], &c[3])?,
                    generation: number(&c[0], &c[4])?,
                };
                Ok((c[0].clone(), meta))
            })
            .collect()
    }

    pub(crate) async fn skill_save(
        &self,
        tenant: &str,
        skill: StoredSkill,
    ) -> Result<u64, StoreError> {
        let body = serde_json::to_string(&SkillBody {
            name: &skill.name,
            description: &skill.description,
            source: &skill.source,
            params: &skill.params,
            tools: &skill.tools,
            updated_ms: skill.updated_ms,
        })
        .map_err(|e| StoreError::Backend(format!("serialising skill {}: {e}", skill.name)))?;
        let version: i64 = SKILL_SAVE
            .key(self.tenant_key("skills", tenant))
            .key(self.tenant_key("skillver", tenant))
            .arg(&skill.name)
            .arg(body)
            .arg(skill.created_ms)
            .arg(self.config.max_skills_per_tenant)
            .invoke_async(&mut self.con())
            .await
            .map_err(backend)?;
        u64::try_from(version).map_err(|_| StoreError::TooManySkills {
            tenant: tenant.to_owned(),
            max_skills_per_tenant: self.config.max_skills_per_tenant,
        })
    }

    pub(crate) async fn skill_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<StoredSkill>, StoreError> {
        let json: Option<String> = ::redis::cmd("HGET")
            .arg(self.tenant_key("skills", tenant))
            .arg(name)
            .query_async(&mut self.con())
            .await
            .map_err(backend)?;
        json.map(|j| parse_skill(tenant, name, &j)).transpose()
    }

    pub(crate) async fn skill_list(
        &self,
        tenant: &str,
    ) -> Result<(u64, Vec<StoredSkill>), StoreError> {
        let (version, all): (Option<u64>, Vec<(String, String)>) = ::redis::pipe()
            .atomic()
            .get(self.tenant_key("skillver", tenant))
            .hgetall(self.tenant_key("skills", tenant))
            .query_async(&mut self.con())
            .await
            .map_err(backend)?;
        let mut skills = all
            .iter()
            .map(|(name, json)| parse_skill(tenant, name, json))
            .collect::<Result<Vec<_>, _>>()?;
        skills.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((version.unwrap_or(0), skills))
    }

    pub(crate) async fn skill_delete(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<u64>, StoreError> {
        let version: i64 = SKILL_DELETE
            .key(self.tenant_key("skills", tenant))
            .key(self.tenant_key("skillver", tenant))
            .arg(name)
            .invoke_async(&mut self.con())
            .await
            .map_err(backend)?;
        Ok(u64::try_from(version).ok())
    }

    pub(crate) async fn skills_version(&self, tenant: &str) -> Result<u64, StoreError> {
        let version: Option<u64> = ::redis::cmd("GET")
            .arg(self.tenant_key("skillver", tenant))
            .query_async(&mut self.con())
            .await
            .map_err(backend)?;
        Ok(version.unwrap_or(0))
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let _: String = ::redis::cmd("PING")
            .query_async(&mut self.con())
            .await
            .map_err(backend)?;
        Ok(())
    }

    pub(crate) async fn footprint(&self, key: &SessionKey) -> Result<Option<u64>, StoreError> {
        let (snap, tomb): (Option<u64>, Option<u64>) = ::redis::pipe()
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(self.session_key("snap", key))
            .arg("SAMPLES")
            .arg(0)
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(self.session_key("tomb", key))
            .query_async(&mut self.con())
            .await
            .map_err(backend)?;
        Ok(snap.map(|s| s + tomb.unwrap_or(0)))
    }

    /// Test helper: the snapshot's retention runs out now, through Redis's own expiry
    /// (`PEXPIRE` with 0 deletes the key as expired); its tombstone stays.
    #[cfg(test)]
    pub(crate) async fn expire_snapshot_now(&self, key: &SessionKey) {
        let _: i64 = ::redis::cmd("PEXPIRE")
            .arg(self.session_key("snap", key))
            .arg(0)
            .query_async(&mut self.con())
            .await
            .expect("PEXPIRE snap");
    }

    /// Test helper: the lease runs out now, as if its holder stalled past `lease_ttl`.
    #[cfg(test)]
    pub(crate) async fn expire_lease_now(&self, key: &SessionKey) {
        let _: i64 = ::redis::cmd("PEXPIRE")
            .arg(self.session_key("lease", key))
            .arg(0)
            .query_async(&mut self.con())
            .await
            .expect("PEXPIRE lease");
    }

    /// Test helper: time left on the snapshot and the tombstone (`PTTL`).
    #[cfg(test)]
    pub(crate) async fn ttls(&self, key: &SessionKey) -> (Option<Duration>, Option<Duration>) {
        let (snap, tomb): (i64, i64) = ::redis::pipe()
            .pttl(self.session_key("snap", key))
            .pttl(self.session_key("tomb", key))
            .query_async(&mut self.con())
            .await
            .expect("PTTL");
        let left = |ms: i64| u64::try_from(ms).ok().map(Duration::from_millis);
        (left(snap), left(tomb))
    }

    /// Test helper: takes `by` off the snapshot's and tombstone's time to live, as if that
    /// much time had passed.
    #[cfg(test)]
    pub(crate) async fn age(&self, key: &SessionKey, by: Duration) {
        for kind in ["snap", "tomb"] {
            let k = self.session_key(kind, key);
            let left: i64 = ::redis::cmd("PTTL")
                .arg(&k)
                .query_async(&mut self.con())
                .await
                .expect("PTTL");
            let _: i64 = ::redis::cmd("PEXPIRE")
                .arg(&k)
                .arg(left - i64::try_from(by.as_millis()).expect("ms"))
                .query_async(&mut self.con())
                .await
                .expect("PEXPIRE");
        }
    }

    /// Test helper: the raw hash of a session's snapshot.
    #[cfg(test)]
    pub(crate) async fn raw_snapshot(&self, key: &SessionKey) -> Vec<(String, String)> {
        ::redis::cmd("HGETALL")
            .arg(self.session_key("snap", key))
            .query_async(&mut self.con())
            .await
            .expect("HGETALL")
    }
}

fn parse_skill(tenant: &str, name: &str, json: &str) -> Result<StoredSkill, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Format {
        what: format!("{tenant} skill {name}"),
        detail: e.to_string(),
    })
}

/// A snapshot from its hash fields; state keys sorted by their stored position.
fn parse_snapshot(key: &SessionKey, fields: Vec<(String, String)>) -> Result<Snapshot, StoreError> {
    let bad = |detail: String| StoreError::Format {
        what: key.to_string(),
        detail,
    };
    let mut format = None;
    let mut meta = SessionMeta::default();
    let mut values = std::collections::HashMap::new();
    let mut order: Vec<(u64, String)> = Vec::new();
    for (field, value) in fields {
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| bad(format!("field {field}={value:?}: {e}")))
        };
        if let Some(k) = field.strip_prefix("v:") {
            values.insert(k.to_owned(), value);
        } else if let Some(k) = field.strip_prefix("o:") {
            order.push((number()?, k.to_owned()));
        } else {
            match field.as_str() {
                "format" => format = Some(number()?),
                "created_ms" => meta.created_ms = number()?,
                "last_used_ms" => meta.last_used_ms = number()?,
                "state_bytes" => meta.state_bytes = number()?,
                "generation" => meta.generation = number()?,
                _ => {} // sum, count, seq: bookkeeping for the scripts
            }
        }
    }
    match format {
        Some(f) if f == u64::from(SNAPSHOT_FORMAT) => {}
        Some(f) => {
            return Err(bad(format!(
                "snapshot format {f}, this build reads format {SNAPSHOT_FORMAT}"
            )));
        }
        None => return Err(bad("no format field".to_owned())),
    }
    if order.len() != values.len() {
        return Err(bad(format!(
            "{} values but {} positions",
            values.len(),
            order.len()
        )));
    }
    order.sort_unstable();
    let entries = order
        .into_iter()
        .map(|(_, k)| {
            let v = values
                .remove(&k)
                .ok_or_else(|| bad(format!("key {k} has a position but no value")))?;
            Ok((k, v))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Snapshot {
        format: SNAPSHOT_FORMAT,
        meta,
        state: CommittedState::from_entries(entries),
    })
}
