//! Session identity: `{tenant, name}`.
//!
//! Named sessions match `^[A-Za-z0-9_.:-]{1,128}$`; a connection's default session is named
//! `@conn-<uuid v4>`, which no named session can spell (`@` is outside the pattern). Tenants
//! match `^[A-Za-z0-9_.-]{1,64}$`, so neither part contains the other's separators and the
//! store can build its keys from them without escaping.

use serde::{Deserialize, Serialize};

/// Longest session name, in bytes (= characters: the pattern is ASCII).
pub const MAX_SESSION_NAME_BYTES: usize = 128;
/// Longest tenant, in bytes (= characters: the pattern is ASCII).
pub const MAX_TENANT_BYTES: usize = 64;
/// Prefix of a connection's default session name, followed by a UUID v4.
pub const CONNECTION_NAME_PREFIX: &str = "@conn-";

/// A session: `{tenant, name}`. Two tenants' sessions of the same name are different.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionKey {
    /// Owner of the session, `^[A-Za-z0-9_.-]{1,64}$`.
    pub tenant: String,
    /// `^[A-Za-z0-9_.:-]{1,128}$` for a named session, `@conn-<uuid v4>` for a connection's.
    pub name: String,
}

/// Why a tenant or session name was refused; the message names the field and its pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The tenant is empty, longer than [`MAX_TENANT_BYTES`], or has a character outside
    /// `[A-Za-z0-9_.-]`.
    #[error("invalid tenant {tenant:?}: must match ^[A-Za-z0-9_.-]{{1,64}}$")]
    Tenant {
        /// The refused tenant.
        tenant: String,
    },
    /// The name is empty, longer than [`MAX_SESSION_NAME_BYTES`], or has a character outside
    /// `[A-Za-z0-9_.:-]`.
    #[error("invalid session name {name:?}: must match ^[A-Za-z0-9_.:-]{{1,128}}$")]
    Name {
        /// The refused name.
        name: String,
    },
}

impl SessionKey {
    /// A named session of `tenant`, both checked against their patterns.
    ///
    /// # Errors
    /// [`KeyError::Tenant`] or [`KeyError::Name`] naming the refused value.
    pub fn named(tenant: impl Into<String>, name: impl Into<String>) -> Result<Self, KeyError> {
        let tenant = Self::check_tenant(tenant.into())?;
        let name = name.into();
        if !valid_name(&name) {
            return Err(KeyError::Name { name });
        }
        Ok(Self { tenant, name })
    }

    /// A new connection's default session of `tenant`: `@conn-<uuid v4>`, never equal to any
    /// other connection's or to a named session.
    ///
    /// # Errors
    /// [`KeyError::Tenant`] when the tenant does not match its pattern.
    pub fn connection(tenant: impl Into<String>) -> Result<Self, KeyError> {
        let tenant = Self::check_tenant(tenant.into())?;
        let name = format!("{CONNECTION_NAME_PREFIX}{}", uuid::Uuid::new_v4());
        Ok(Self { tenant, name })
    }

    /// Whether this is a connection's default session (`@conn-…`) rather than a named one.
    #[must_use]
    pub fn is_connection(&self) -> bool {
        self.name.starts_with(CONNECTION_NAME_PREFIX)
    }

    /// Checks a tenant against `^[A-Za-z0-9_.-]{1,64}$` and returns it.
    ///
    /// # Errors
    /// [`KeyError::Tenant`] naming the refused value.
    pub fn check_tenant(tenant: String) -> Result<String, KeyError> {
        if valid_tenant(&tenant) {
            Ok(tenant)
        } else {
            Err(KeyError::Tenant { tenant })
        }
    }
}

/// `^[A-Za-z0-9_.-]{1,64}$`.
pub(crate) fn valid_tenant(tenant: &str) -> bool {
    (1..=MAX_TENANT_BYTES).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `^[A-Za-z0-9_.:-]{1,128}$`.
fn valid_name(name: &str) -> bool {
    (1..=MAX_SESSION_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl std::fmt::Display for SessionKey {
    /// `tenant/name`, as errors and logs name a session.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tenants_at_their_limits() {
        let name128 = "a".repeat(MAX_SESSION_NAME_BYTES);
        let tenant64 = "t".repeat(MAX_TENANT_BYTES);
        let key = SessionKey::named(tenant64.clone(), name128.clone()).unwrap();
        assert_eq!(
            (key.tenant.as_str(), key.name.as_str()),
            (&*tenant64, &*name128)
        );
        assert!(!key.is_connection());
        assert!(matches!(
            SessionKey::named("local", "a".repeat(MAX_SESSION_NAME_BYTES + 1)),
            Err(KeyError::Name { .. })
        ));
        assert!(matches!(
            SessionKey::named("t".repeat(MAX_TENANT_BYTES + 1), "a"),
            Err(KeyError::Tenant { .. })
        ));
        assert!(SessionKey::named("acme-1.prod_x", "job:2024-01.a_b").is_ok());
    }

    #[test]
    fn refused_characters_name_the_field() {
        for bad in ["", "a b", "@conn-x", "a/b", "é", "a\n"] {
            let err = SessionKey::named("local", bad).unwrap_err();
            assert_eq!(
                err,
                KeyError::Name {
                    name: bad.to_owned()
                }
            );
            assert!(err.to_string().contains("session name"), "{err}");
        }
        for bad in ["", "a:b", "a b", "a/b"] {
            let err = SessionKey::named(bad, "ok").unwrap_err();
            assert!(err.to_string().contains("tenant"), "{err}");
        }
    }

    #[test]
    fn connection_sessions_are_unique_and_unnamable() {
        let a = SessionKey::connection("local").unwrap();
        let b = SessionKey::connection("local").unwrap();
        assert_ne!(a, b);
        assert!(a.is_connection());
        assert!(
            a.name.starts_with("@conn-") && a.name.len() == 6 + 36,
            "{}",
            a.name
        );
        assert!(SessionKey::named("local", a.name.clone()).is_err());
        assert!(SessionKey::connection("bad tenant").is_err());
        assert_eq!(a.to_string(), format!("local/{}", a.name));
    }
}
