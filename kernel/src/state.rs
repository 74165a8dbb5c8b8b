//! A session's committed `mcp.state`, kept per top-level key, and the per-call changes to it.
//!
//! Keys are kept as JSON string literals (`"\"rows\""`, `"\"\\ud800\""`) and values as JSON
//! text, both exactly as the engine's `JSON.stringify` wrote them: a key or value with a lone
//! UTF-16 surrogate survives unchanged, which a Rust `String` key could not.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// How a call used `mcp.state`, as recorded by the worker's state Proxy.
///
/// JSON: `{"read": bool, "written": bool}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateAccess {
    /// The call looked at `mcp.state`: read a key, tested one with `in`, or listed the keys.
    pub read: bool,
    /// The call assigned, defined or deleted a key, or replaced `mcp.state` (whether or not the
    /// value then differed from the committed one).
    pub written: bool,
}

/// What one successful call changed in `mcp.state`: only the top-level keys whose JSON text
/// differs from the committed one.
///
/// JSON: `{"replace": bool, "changes": [[key, value|null], ...], "order": [key, ...]|null}`,
/// keys as JSON string literals, values as JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDelta {
    /// The call replaced `mcp.state` as a whole: drop every key before applying `changes`.
    pub replace: bool,
    /// Keys set to a new JSON value (`Some`) or deleted (`None`), in the order to apply them.
    /// A key already present keeps its position; a new key goes at the end.
    pub changes: Vec<(String, Option<String>)>,
    /// The complete key order after the call, when applying `changes` does not give it (a key
    /// deleted and added again moves to the end, as in JavaScript).
    pub order: Option<Vec<String>>,
}

/// The committed `mcp.state` of one session: top-level keys in the object's order, each with
/// its value's JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommittedState {
    entries: IndexMap<String, String>,
}

impl CommittedState {
    /// The empty state `{}` of a new session.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the state is `{}`.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of top-level keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Applies one call's changes.
    pub fn apply(&mut self, delta: StateDelta) {
        if delta.replace {
            self.entries.clear();
        }
        for (key, value) in delta.changes {
            match value {
                Some(value) => {
                    self.entries.insert(key, value);
                }
                None => {
                    self.entries.shift_remove(&key);
                }
            }
        }
        if let Some(order) = delta.order {
            let mut entries = std::mem::take(&mut self.entries);
            for key in order {
                if let Some(value) = entries.shift_remove(&key) {
                    self.entries.insert(key, value);
                }
            }
            // A key the order left out (never sent by the worker) keeps its value, at the end.
            self.entries.extend(entries);
        }
    }

    /// Size of the state as one JSON object text ([`CommittedState::to_json`]), in bytes.
    #[must_use]
    pub fn json_bytes(&self) -> usize {
        let pairs: usize = self
            .entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + 1)
            .sum();
        pairs + self.entries.len().saturating_sub(1) + 2
    }

    /// The whole state as one JSON object text, in key order.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.json_bytes());
        out.push('{');
        for (i, (key, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push(':');
            out.push_str(value);
        }
        out.push('}');
        out
    }

    /// `(key JSON, value JSON)` pairs in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &String)> {
        self.entries.iter()
    }

    /// The state with these `(key JSON, value JSON)` pairs in this order (a later duplicate
    /// key replaces the earlier value in place), as a store reads it back.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            entries: entries.into_iter().collect(),
        }
    }

    /// The value JSON of one key (given as a JSON string literal), if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(k: &str, v: &str) -> (String, Option<String>) {
        (format!("\"{k}\""), Some(v.to_owned()))
    }

    #[test]
    fn changes_replace_in_place_append_and_delete() {
        let mut state = CommittedState::new();
        assert_eq!(state.to_json(), "{}");
        state.apply(StateDelta {
            changes: vec![set("b", "1"), set("a", "[2]")],
            ..StateDelta::default()
        });
        assert_eq!(state.to_json(), r#"{"b":1,"a":[2]}"#);
        state.apply(StateDelta {
            changes: vec![set("b", "3"), set("c", "null"), ("\"a\"".into(), None)],
            ..StateDelta::default()
        });
        assert_eq!(state.to_json(), r#"{"b":3,"c":null}"#);
        assert_eq!(state.len(), 2);
    }

    #[test]
    fn an_explicit_order_and_a_replacement() {
        let mut state = CommittedState::new();
        state.apply(StateDelta {
            changes: vec![set("a", "1"), set("b", "2")],
            ..StateDelta::default()
        });
        state.apply(StateDelta {
            changes: vec![set("a", "3")],
            order: Some(vec!["\"b\"".into(), "\"a\"".into()]),
            ..StateDelta::default()
        });
        assert_eq!(state.to_json(), r#"{"b":2,"a":3}"#);
        state.apply(StateDelta {
            replace: true,
            changes: vec![set("z", "\"\\ud800\"")],
            order: None,
        });
        assert_eq!(state.to_json(), r#"{"z":"\ud800"}"#);
    }
}
