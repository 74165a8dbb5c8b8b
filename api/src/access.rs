//! Which upstream servers each tenant may use: every configured server, unless the
//! `--auth-file` gives the tenant an allowlist. Tool calls, listings, searches, `servers`
//! in code and `tool://` resources all go through [`Access::servers`].

use std::collections::{BTreeSet, HashMap};

/// The allowlists of the tenants that have one. Immutable once the server starts.
#[derive(Debug, Default)]
pub(crate) struct Access {
    only: HashMap<String, BTreeSet<String>>,
}

/// The servers one tenant may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Servers<'a>(Option<&'a BTreeSet<String>>);

impl Servers<'_> {
    /// Whether `server` is one of them.
    pub(crate) fn allows(&self, server: &str) -> bool {
        self.0.is_none_or(|only| only.contains(server))
    }
}

impl Access {
    /// Tenants limited to the servers named; a tenant not listed may use every server.
    pub(crate) fn new(only: HashMap<String, BTreeSet<String>>) -> Self {
        Self { only }
    }

    /// A tenant and a server its allowlist names that `configured` lacks, if any.
    pub(crate) fn unknown_server<'a>(&'a self, configured: &[&str]) -> Option<(&'a str, &'a str)> {
        let mut tenants: Vec<_> = self.only.iter().collect();
        tenants.sort();
        tenants.into_iter().find_map(|(tenant, servers)| {
            servers
                .iter()
                .find(|s| !configured.contains(&s.as_str()))
                .map(|s| (tenant.as_str(), s.as_str()))
        })
    }

    /// The servers `tenant` may use.
    pub(crate) fn servers(&self, tenant: &str) -> Servers<'_> {
        Servers(self.only.get(tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_with_an_allowlist_sees_only_its_servers_and_others_see_all() {
        let access = Access::new(HashMap::from([(
            "a".to_owned(),
            BTreeSet::from(["fs".to_owned()]),
        )]));
        assert!(access.servers("a").allows("fs"));
        assert!(!access.servers("a").allows("memory"));
        assert!(access.servers("b").allows("memory"));
    }
}
