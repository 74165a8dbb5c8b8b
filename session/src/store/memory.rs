//! The embedded store: everything in this process, expiry by tokio time (checked lazily on
//! access, and by a sweep when a bound is reached), so tests pause and advance the clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use mcpk_kernel::{CommittedState, StateDelta};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    Lease, Lookup, SNAPSHOT_FORMAT, SessionMeta, Snapshot, StateSize, StoreConfig, StoreError,
    StoredSkill,
};
use crate::key::SessionKey;

/// Snapshots, tombstones, leases and skills in this process's memory; see [`super::Store`].
///
/// One `std::sync::Mutex` guards everything and is never held across an `.await`; a released
/// lease wakes this process's waiters at once.
#[derive(Debug)]
pub struct MemoryStore {
    config: StoreConfig,
    inner: Mutex<Inner>,
    released: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Ordered by `(tenant, name)` so that one tenant's sessions are a range.
    sessions: BTreeMap<SessionKey, Stored>,
    tombstones: HashMap<SessionKey, Instant>,
    leases: HashMap<SessionKey, Held>,
    /// The last fencing token issued.
    last_token: u64,
    skills: HashMap<String, Library>,
}

#[derive(Debug)]
struct Stored {
    state: CommittedState,
    size: StateSize,
    meta: SessionMeta,
    expires: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    token: u64,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Library {
    version: u64,
    skills: BTreeMap<String, StoredSkill>,
}

impl Inner {
    /// The unexpired snapshot of `key`, dropping an expired one.
    fn session(&mut self, key: &SessionKey, now: Instant) -> Option<&mut Stored> {
        if self.sessions.get(key).is_some_and(|s| s.expires <= now) {
            self.sessions.remove(key);
        }
        self.sessions.get_mut(key)
    }

    /// Whether `lease` is the live lease of `key`.
    fn holds(&self, key: &SessionKey, lease: &Lease, now: Instant) -> bool {
        self.leases
            .get(key)
            .is_some_and(|h| h.token == lease.token && h.expires > now)
    }

    fn sweep(&mut self, now: Instant) {
        self.sessions.retain(|_, s| s.expires > now);
        self.tombstones.retain(|_, t| *t > now);
        self.leases.retain(|_, h| h.expires > now);
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new(config: StoreConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
            released: Notify::new(),
        }
    }

    pub(crate) fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps (every update is a single
        // insert or remove), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) async fn load(&self, key: &SessionKey) -> Result<Lookup, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(stored) = inner.session(key, now) {
            return Ok(Lookup::Found(Snapshot {
                format: SNAPSHOT_FORMAT,
                meta: stored.meta.clone(),
                state: stored.state.clone(),
            }));
        }
        match inner.tombstones.get(key) {
            Some(until) if *until > now => Ok(Lookup::Expired),
            Some(_) => {
                inner.tombstones.remove(key);
                Ok(Lookup::NotFound)
            }
            None => Ok(Lookup::NotFound),
        }
    }

    pub(crate) async fn acquire(
        &self,
        key: &SessionKey,
        wait_until: Instant,
    ) -> Result<Lease, StoreError> {
        let start = Instant::now();
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the lock is dropped, so a release in between still wakes us.
            released.as_mut().enable();
            let wake_at = {
                let now = Instant::now();
                let mut inner = self.lock();
                match inner.leases.get(key) {
                    Some(held) if held.expires > now => held.expires.min(wait_until),
                    _ => {
                        inner.last_token += 1;
                        let token = inner.last_token;
                        let expires = now + self.config.lease_ttl;
                        inner.leases.insert(key.clone(), Held { token, expires });
                        let generation = inner.session(key, now).map_or(0, |s| s.meta.generation);
                        let skills_version = inner.skills.get(&key.tenant).map_or(0, |l| l.version);
                        return Ok(Lease {
                            token,
                            generation,
                            skills_version,
                        });
                    }
                }
            };
            let now = Instant::now();
            if now >= wait_until {
                return Err(StoreError::Busy {
                    session: key.clone(),
                    waited: now.saturating_duration_since(start),
                });
            }
            tokio::select! {
                () = &mut released => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    pub(crate) async fn renew(&self, key: &SessionKey, lease: &Lease) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if !inner.holds(key, lease, now) {
            return Err(fenced(key, lease));
        }
        if let Some(held) = inner.leases.get_mut(key) {
            held.expires = now + self.config.lease_ttl;
        }
        Ok(())
    }

    pub(crate) async fn commit(
        &self,
        key: &SessionKey,
        lease: &Lease,
        delta: &StateDelta,
        meta: &SessionMeta,
    ) -> Result<SessionMeta, StoreError> {
        self.write(key, lease, meta, Some(delta))
    }

    pub(crate) async fn touch(
        &self,
        key: &SessionKey,
        lease: &Lease,
        meta: &SessionMeta,
    ) -> Result<SessionMeta, StoreError> {
        self.write(key, lease, meta, None)
    }

    pub(crate) async fn finish(
        &self,
        key: &SessionKey,
        lease: &Lease,
        delta: Option<&StateDelta>,
        meta: &SessionMeta,
    ) -> Result<SessionMeta, StoreError> {
        let written = self.write(key, lease, meta, delta)?;
        self.release(key, lease).await?;
        Ok(written)
    }

    /// Commit (`delta` given) or touch: fenced, capped, then applied with every TTL refreshed.
    fn write(
        &self,
        key: &SessionKey,
        lease: &Lease,
        meta: &SessionMeta,
        delta: Option<&StateDelta>,
    ) -> Result<SessionMeta, StoreError> {
        let now = Instant::now();
        let config = &self.config;
        let mut guard = self.lock();
        let inner = &mut *guard;
        if !inner.holds(key, lease, now) {
            return Err(fenced(key, lease));
        }
        let existing = inner.session(key, now).map(|s| s.size);
        let old_size = existing.unwrap_or_default();
        let new_size = match delta {
            Some(delta) => {
                let state = inner.sessions.get(key).map(|s| &s.state);
                let size = old_size.after(delta, |k| state.and_then(|s| s.get(k)).map(str::len));
                if size.json_bytes() > config.max_snapshot_bytes as u64 {
                    return Err(StoreError::TooLarge {
                        session: key.clone(),
                        bytes: size.json_bytes(),
                        max_snapshot_bytes: config.max_snapshot_bytes,
                    });
                }
                size
            }
            None => old_size,
        };
        if existing.is_none() && inner.sessions.len() >= config.max_sessions_stored {
            inner.sweep(now);
            if inner.sessions.len() >= config.max_sessions_stored {
                return Err(StoreError::Full {
                    max_sessions_stored: config.max_sessions_stored,
                });
            }
        }
        let stored = inner.sessions.entry(key.clone()).or_insert_with(|| Stored {
            state: CommittedState::new(),
            size: StateSize::default(),
            meta: SessionMeta {
                created_ms: meta.created_ms,
                ..SessionMeta::default()
            },
            expires: now,
        });
        if let Some(delta) = delta {
            stored.state.apply(delta.clone());
            stored.meta.generation += 1;
        }
        stored.size = new_size;
        stored.meta.last_used_ms = meta.last_used_ms;
        stored.meta.state_bytes = new_size.json_bytes();
        stored.expires = now + config.retention;
        let stored_meta = stored.meta.clone();
        self.put_tombstone(inner, key, now + config.effective_tombstone(), now);
        if let Some(held) = inner.leases.get_mut(key) {
            held.expires = now + config.lease_ttl;
        }
        Ok(stored_meta)
    }

    /// Sets a tombstone, keeping at most `max_sessions_stored`: when full, expired ones go
    /// first, then the one that would expire soonest.
    fn put_tombstone(&self, inner: &mut Inner, key: &SessionKey, until: Instant, now: Instant) {
        let max = self.config.max_sessions_stored.max(1);
        if !inner.tombstones.contains_key(key) && inner.tombstones.len() >= max {
            inner.tombstones.retain(|_, t| *t > now);
            if inner.tombstones.len() >= max {
                let soonest = inner
                    .tombstones
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, _)| k.clone());
                if let Some(soonest) = soonest {
                    inner.tombstones.remove(&soonest);
                }
            }
        }
        inner.tombstones.insert(key.clone(), until);
    }

    pub(crate) async fn release(&self, key: &SessionKey, lease: &Lease) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner
            .leases
            .get(key)
            .is_some_and(|h| h.token == lease.token)
        {
            inner.leases.remove(key);
            drop(inner);
            self.released.notify_waiters();
        }
        Ok(())
    }

    pub(crate) async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let existed = inner.session(key, now).is_some();
        inner.sessions.remove(key);
        inner.tombstones.remove(key);
        let had_lease = inner.leases.remove(key).is_some();
        drop(inner);
        if had_lease {
            self.released.notify_waiters();
        }
        Ok(existed)
    }

    pub(crate) async fn forget_tombstone(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.lock().tombstones.remove(key);
        Ok(())
    }

    pub(crate) async fn list(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, SessionMeta)>, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let from = SessionKey {
            tenant: tenant.to_owned(),
            name: String::new(),
        };
        let mut expired = Vec::new();
        let mut out = Vec::new();
        for (key, stored) in inner.sessions.range(from..) {
            if key.tenant != tenant {
                break;
            }
            if stored.expires <= now {
                expired.push(key.clone());
            } else {
                out.push((key.name.clone(), stored.meta.clone()));
            }
        }
        for key in expired {
            inner.sessions.remove(&key);
        }
        // Ties as Redis's ZREVRANGE orders them: name descending.
        out.sort_by(|a, b| (b.1.last_used_ms, &b.0).cmp(&(a.1.last_used_ms, &a.0)));
        Ok(out)
    }

    pub(crate) async fn skill_save(
        &self,
        tenant: &str,
        mut skill: StoredSkill,
    ) -> Result<u64, StoreError> {
        let max = self.config.max_skills_per_tenant;
        let mut inner = self.lock();
        let library = inner.skills.entry(tenant.to_owned()).or_default();
        match library.skills.get(&skill.name) {
            Some(old) => {
                skill.revision = old.revision + 1;
                skill.created_ms = old.created_ms;
            }
            None if library.skills.len() >= max => {
                return Err(StoreError::TooManySkills {
                    tenant: tenant.to_owned(),
                    max_skills_per_tenant: max,
                });
            }
            None => skill.revision = 1,
        }
        library.skills.insert(skill.name.clone(), skill);
        library.version += 1;
        Ok(library.version)
    }

    pub(crate) async fn skill_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<StoredSkill>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .skills
            .get(tenant)
            .and_then(|l| l.skills.get(name))
            .cloned())
    }

    pub(crate) async fn skill_list(
        &self,
        tenant: &str,
    ) -> Result<(u64, Vec<StoredSkill>), StoreError> {
        let inner = self.lock();
        Ok(inner.skills.get(tenant).map_or((0, Vec::new()), |l| {
            (l.version, l.skills.values().cloned().collect())
        }))
    }

    pub(crate) async fn skill_delete(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<u64>, StoreError> {
        let mut inner = self.lock();
        let Some(library) = inner.skills.get_mut(tenant) else {
            return Ok(None);
        };
        if library.skills.remove(name).is_none() {
            return Ok(None);
        }
        library.version += 1;
        Ok(Some(library.version))
    }

    pub(crate) async fn skills_version(&self, tenant: &str) -> Result<u64, StoreError> {
        Ok(self.lock().skills.get(tenant).map_or(0, |l| l.version))
    }

    /// Test helper: the snapshot's retention runs out now (its tombstone stays).
    #[cfg(test)]
    pub(crate) fn expire_snapshot_now(&self, key: &SessionKey) {
        self.lock().sessions.remove(key);
    }

    /// Test helper: the lease runs out now (as if its holder stalled past `lease_ttl`).
    #[cfg(test)]
    pub(crate) fn expire_lease_now(&self, key: &SessionKey) {
        self.lock().leases.remove(key);
    }

    /// Test helper: how many tombstones are kept.
    #[cfg(test)]
    pub(crate) fn tombstone_count(&self) -> usize {
        self.lock().tombstones.len()
    }

    /// Test helper: time left on the snapshot and the tombstone.
    #[cfg(test)]
    pub(crate) fn ttls(
        &self,
        key: &SessionKey,
    ) -> (Option<std::time::Duration>, Option<std::time::Duration>) {
        let now = Instant::now();
        let inner = self.lock();
        (
            inner
                .sessions
                .get(key)
                .map(|s| s.expires.saturating_duration_since(now)),
            inner
                .tombstones
                .get(key)
                .map(|t| t.saturating_duration_since(now)),
        )
    }
}

fn fenced(key: &SessionKey, lease: &Lease) -> StoreError {
    StoreError::Fenced {
        session: key.clone(),
        token: lease.token,
    }
}
