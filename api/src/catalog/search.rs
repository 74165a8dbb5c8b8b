//! Ranked search over tool names and descriptions (being written).

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SearchHit {
    /// Upstream server name.
    pub(crate) server: String,
    /// Tool name on that server.
    pub(crate) tool: String,
    /// Relevance; higher is better.
    pub(crate) score: f32,
}

/// Index over `(server, tool, description)` documents.
#[derive(Debug, Default)]
pub(crate) struct SearchIndex {}

#[allow(dead_code)]
impl SearchIndex {
    pub(crate) fn new<'a>(_docs: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> Self {
        Self {}
    }

    pub(crate) fn search(&self, _query: &str, _server: Option<&str>, _limit: usize) -> Vec<SearchHit> {
        Vec::new()
    }
}
