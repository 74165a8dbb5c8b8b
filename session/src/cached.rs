//! The result cache's semantics: which calls may be cached, what their key covers, and what an
//! entry holds. Storage is `mcpk_cache::TieredCache`.
//!
//! Keys work like an HTTP cache's `Vary`. The base key covers what every call depends on (the
//! kernel version, the tenant, the code and the limits that shape a result). A first entry
//! under the base key (the *vary record*) says which run-time inputs the call turned out to
//! depend on; the entry itself is under the base key plus those inputs:
//! - the hash of `mcp.state` before the call, when the call read or wrote it;
//! - the skills library version, when it looked a skill up or listed skills;
//! - the upstream catalogue version, when it called or listed tools.
//!
//! A call is cached only when it succeeded and the worker saw nothing a replay could not
//! reproduce (see [`cacheable`]).

use std::time::Duration;

use mcpk_cache::{CacheKey, KeyBuilder};
use mcpk_kernel::{CommittedState, Effects, LogEntry, StateAccess, StateDelta};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::key::SessionKey;

/// What a cached call depended on, recorded at run time: the vary record.
///
/// JSON: `{"state": bool, "skills": bool, "tools": bool}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Vary {
    pub(crate) state: bool,
    pub(crate) skills: bool,
    pub(crate) tools: bool,
}

/// A cached answer: the result, its logs, and the state change a hit applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) result: String,
    pub(crate) truncated_from_bytes: Option<usize>,
    pub(crate) logs: Vec<LogEntry>,
    pub(crate) delta: Option<StateDelta>,
    pub(crate) state_access: StateAccess,
}

/// The inputs of the base key besides the code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_result_bytes: usize,
    pub(crate) max_log_bytes: usize,
}

/// The key every call of `code` in `key`'s tenant starts from.
pub(crate) fn base_key(key: &SessionKey, code: &str, limits: Limits) -> CacheKey {
    KeyBuilder::new()
        .field_str("kind", "base")
        .field_str("kernel", env!("CARGO_PKG_VERSION"))
        .field_str("tenant", &key.tenant)
        .field_str("code", code)
        .field_u64("max_result_bytes", limits.max_result_bytes as u64)
        .field_u64("max_log_bytes", limits.max_log_bytes as u64)
        .finish()
}

/// Where the vary record of `base` lives.
pub(crate) fn vary_key(base: &CacheKey) -> CacheKey {
    KeyBuilder::new()
        .field_str("kind", "vary")
        .field("base", base.as_bytes())
        .finish()
}

/// Where the entry of `base` lives, given what the call depended on.
pub(crate) fn entry_key(
    base: &CacheKey,
    vary: Vary,
    state: &CommittedState,
    skills_version: u64,
    catalog_version: &str,
) -> CacheKey {
    let mut builder = KeyBuilder::new()
        .field_str("kind", "entry")
        .field("base", base.as_bytes());
    if vary.state {
        builder = builder.field("state_sha256", &Sha256::digest(state.to_json().as_bytes()));
    }
    if vary.skills {
        builder = builder.field_u64("skills_version", skills_version);
    }
    if vary.tools {
        builder = builder.field_str("catalog_version", catalog_version);
    }
    builder.finish()
}

/// Host operations whose answers a key can cover (the catalogue or the skills library);
/// any other (resources, saving or deleting skills, sessions) makes a call uncacheable.
const KEYED_HOST_OPS: [&str; 4] = ["list_tools", "search_tools", "skill_list", "skill_get"];

/// The TTL a successful call may be cached for, and what it depended on; `None` when it may
/// not be cached: it read the clock, drew randomness, started a timer, called a tool that is
/// not annotated `readOnlyHint: true` (or more tools than were recorded), or used a host
/// operation no key covers. A call whose only impurity is read-only tool calls gets
/// `readonly_tool_ttl`.
pub(crate) fn cacheable(
    effects: &Effects,
    access: StateAccess,
    skills_used: &[String],
    read_only: impl Fn(&str, &str) -> bool,
    ttl: Duration,
    readonly_tool_ttl: Duration,
) -> Option<(Duration, Vary)> {
    if effects.time || effects.random || effects.timers || effects.tools_truncated {
        return None;
    }
    if !effects
        .host_ops
        .iter()
        .all(|op| KEYED_HOST_OPS.contains(&op.as_str()))
    {
        return None;
    }
    if !effects.tools.iter().all(|t| read_only(&t.server, &t.tool)) {
        return None;
    }
    let op = |name: &str| effects.host_ops.iter().any(|o| o == name);
    let vary = Vary {
        state: access.read || access.written,
        skills: !skills_used.is_empty() || op("skill_list") || op("skill_get"),
        tools: !effects.tools.is_empty() || op("list_tools") || op("search_tools"),
    };
    let ttl = if effects.tools.is_empty() {
        ttl
    } else {
        ttl.min(readonly_tool_ttl)
    };
    Some((ttl, vary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpk_kernel::ToolRef;

    const TTL: Duration = Duration::from_secs(600);
    const RO_TTL: Duration = Duration::from_secs(60);

    fn check(
        effects: &Effects,
        access: StateAccess,
        skills: &[String],
    ) -> Option<(Duration, Vary)> {
        cacheable(
            effects,
            access,
            skills,
            |_, tool| tool.starts_with("get"),
            TTL,
            RO_TTL,
        )
    }

    #[test]
    fn impure_calls_are_not_cacheable() {
        let clean = Effects::default();
        assert!(check(&clean, StateAccess::default(), &[]).is_some());
        for effects in [
            Effects {
                time: true,
                ..Effects::default()
            },
            Effects {
                random: true,
                ..Effects::default()
            },
            Effects {
                timers: true,
                ..Effects::default()
            },
            Effects {
                tools_truncated: true,
                ..Effects::default()
            },
            Effects {
                host_ops: vec!["skill_save".into()],
                ..Effects::default()
            },
            Effects {
                host_ops: vec!["read_resource".into()],
                ..Effects::default()
            },
            Effects {
                tools: vec![ToolRef {
                    server: "s".into(),
                    tool: "delete_all".into(),
                }],
                ..Effects::default()
            },
        ] {
            assert!(
                check(&effects, StateAccess::default(), &[]).is_none(),
                "{effects:?}"
            );
        }
    }

    #[test]
    fn read_only_tools_get_the_short_ttl_and_vary_on_the_catalogue() {
        let effects = Effects {
            tools: vec![ToolRef {
                server: "s".into(),
                tool: "get_item".into(),
            }],
            ..Effects::default()
        };
        let access = StateAccess {
            read: true,
            written: false,
        };
        let (ttl, vary) = check(&effects, access, &["f".into()]).unwrap();
        assert_eq!(ttl, RO_TTL);
        assert_eq!(
            vary,
            Vary {
                state: true,
                skills: true,
                tools: true
            }
        );
        let (ttl, vary) = check(&Effects::default(), StateAccess::default(), &[]).unwrap();
        assert_eq!(ttl, TTL);
        assert_eq!(
            vary,
            Vary {
                state: false,
                skills: false,
                tools: false
            }
        );
    }

    #[test]
    fn entry_keys_change_only_with_what_the_call_depended_on() {
        let key = SessionKey::named("t", "s").unwrap();
        let limits = Limits {
            max_result_bytes: 10,
            max_log_bytes: 10,
        };
        let base = base_key(&key, "return 1", limits);
        assert_ne!(base, base_key(&key, "return 2", limits));
        assert_ne!(
            base,
            base_key(&SessionKey::named("u", "s").unwrap(), "return 1", limits)
        );
        assert_eq!(
            base,
            base_key(
                &SessionKey::named("t", "other").unwrap(),
                "return 1",
                limits
            )
        );
        let empty = CommittedState::new();
        let mut full = CommittedState::new();
        full.apply(StateDelta {
            changes: vec![("\"n\"".into(), Some("1".into()))],
            ..StateDelta::default()
        });
        let none = Vary {
            state: false,
            skills: false,
            tools: false,
        };
        assert_eq!(
            entry_key(&base, none, &empty, 1, "a"),
            entry_key(&base, none, &full, 2, "b")
        );
        let state = Vary {
            state: true,
            ..none
        };
        assert_ne!(
            entry_key(&base, state, &empty, 1, "a"),
            entry_key(&base, state, &full, 1, "a")
        );
        let skills = Vary {
            skills: true,
            ..none
        };
        assert_ne!(
            entry_key(&base, skills, &empty, 1, "a"),
            entry_key(&base, skills, &empty, 2, "a")
        );
        let tools = Vary {
            tools: true,
            ..none
        };
        assert_ne!(
            entry_key(&base, tools, &empty, 1, "a"),
            entry_key(&base, tools, &empty, 1, "b")
        );
    }
}
