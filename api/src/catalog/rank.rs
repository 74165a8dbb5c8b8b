//! Ranked search over tool names and descriptions.
//!
//! BM25 (the `bm25` crate's embedder and scorer, with its English tokenizer: Unicode word
//! split, lowercase, stop words removed, Snowball stemming). Around it, three things tuned for
//! tool catalogues:
//! - **Identifiers split into words**, in documents and queries alike: `read_file`,
//!   `readFile`, `read-file` and `ReadFile` all give `read`, `file` and the joined `readfile`,
//!   so `"read file"`, `"readFile"` and `"read_file"` find the same tool.
//! - **The name weighs more** than the description: its words are indexed three times
//!   ([`NAME_WEIGHT`]); the server name once.
//! - **Unknown query words match as prefixes** of indexed words, so `"list dir"` reaches
//!   `list_directory` when no description says "dir".
//!
//! Ties keep catalogue order, so results are deterministic.

use std::collections::BTreeSet;
use std::fmt;

use bm25::{
    DefaultTokenizer, EmbedderBuilder, Embedding, Language, Scorer, TokenEmbedder, TokenEmbedding,
    Tokenizer,
};

/// How many times a tool's name is repeated in its indexed text, against once for the
/// description and the server name.
const NAME_WEIGHT: usize = 3;

/// How much a full match of the tool's name words adds: the BM25 score is multiplied by
/// `1 + NAME_MATCH_BOOST × (share of the name's words in the query)`. This stands in for the
/// per-field length normalisation BM25F would give the short name field, which one BM25 over
/// the joined text lacks: without it `"read file"` prefers `read_multiple_files`, whose
/// description says "files" more often.
const NAME_MATCH_BOOST: f32 = 1.0;

/// What a deprecated tool's score is multiplied by, so that its replacement (which usually
/// shares its words, and is named in the deprecation notice) ranks above it. A tool is
/// deprecated when its description has the word "deprecated" (any case). A query that itself
/// says "deprecated" ranks without it.
const DEPRECATED_FACTOR: f32 = 0.5;

/// Shortest unknown query word, in characters, that is expanded to the indexed words it
/// begins; shorter ones would match too much.
const MIN_PREFIX_CHARS: usize = 3;

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SearchHit {
    /// Upstream server name.
    pub(crate) server: String,
    /// Tool name on that server.
    pub(crate) tool: String,
    /// Relevance; higher is better. Always above zero for a non-empty query; zero for the
    /// catalogue-order listing an empty query gives.
    pub(crate) score: f32,
}

/// Index over `(server, tool, description)` documents, built once per catalogue.
pub(crate) struct SearchIndex {
    /// `(server, tool)` in catalogue order; a document's id is its position here.
    docs: Vec<(String, String)>,
    /// The tokens of each tool's name words, by document id.
    name_tokens: Vec<BTreeSet<String>>,
    /// Whether each tool's description calls it deprecated, by document id.
    deprecated: Vec<bool>,
    tokenizer: IdentifierTokenizer,
    scorer: Scorer<usize, u32>,
    /// Every token indexed, for prefix expansion of unknown query words.
    vocabulary: BTreeSet<String>,
}

impl fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchIndex")
            .field("docs", &self.docs.len())
            .field("vocabulary", &self.vocabulary.len())
            .finish_non_exhaustive()
    }
}

impl Default for SearchIndex {
    fn default() -> Self {
        Self::new(std::iter::empty())
    }
}

impl SearchIndex {
    /// Indexes `(server, tool, description)` documents; their order is the catalogue order
    /// that ties and empty queries keep.
    pub(crate) fn new<'a>(docs: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> Self {
        let mut ids = Vec::new();
        let mut texts = Vec::new();
        let mut deprecated = Vec::new();
        for (server, tool, description) in docs {
            deprecated.push(says_deprecated(description));
            let mut text = String::new();
            for _ in 0..NAME_WEIGHT {
                text.push_str(tool);
                text.push(' ');
            }
            text.push_str(server);
            text.push(' ');
            text.push_str(description);
            ids.push((server.to_owned(), tool.to_owned()));
            texts.push(text);
        }
        let tokenizer = IdentifierTokenizer::default();
        let name_tokens = ids
            .iter()
            .map(|(_, tool)| tokenizer.name_tokens(tool))
            .collect();
        let vocabulary = texts
            .iter()
            .flat_map(|text| tokenizer.tokenize(text))
            .collect();
        let corpus: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embedder =
            EmbedderBuilder::<u32, IdentifierTokenizer>::with_tokenizer_and_fit_to_corpus(
                IdentifierTokenizer::default(),
                &corpus,
            )
            .build();
        let mut scorer = Scorer::new();
        for (id, text) in texts.iter().enumerate() {
            scorer.upsert(&id, embedder.embed(text));
        }
        Self {
            docs: ids,
            name_tokens,
            deprecated,
            tokenizer,
            scorer,
            vocabulary,
        }
    }

    /// The best `limit` matches for `query`, best first, only those scoring above zero, and
    /// only on `server` when given. An empty (or all-whitespace) query lists the first `limit`
    /// tools in catalogue order, with score zero.
    pub(crate) fn search(&self, query: &str, server: Option<&str>, limit: usize) -> Vec<SearchHit> {
        self.search_where(query, |s| server.is_none_or(|only| only == s), limit)
    }

    /// [`SearchIndex::search`] over the tools of the servers `on_server` accepts.
    pub(crate) fn search_where(
        &self,
        query: &str,
        on_server: impl Fn(&str) -> bool,
        limit: usize,
    ) -> Vec<SearchHit> {
        let on_server = |id: usize| on_server(&self.docs[id].0);
        if query.trim().is_empty() {
            return (0..self.docs.len())
                .filter(|&id| on_server(id))
                .take(limit)
                .map(|id| self.hit(id, 0.0))
                .collect();
        }
        let tokens = self.query_tokens(query);
        let demote = !says_deprecated(query);
        let mut matches: Vec<(usize, f32)> = self
            .scorer
            .matches(&embedding(&tokens))
            .into_iter()
            .filter(|m| m.score > 0.0 && on_server(m.id))
            .map(|m| {
                let factor = if demote && self.deprecated[m.id] {
                    DEPRECATED_FACTOR
                } else {
                    1.0
                };
                (
                    m.id,
                    factor * m.score * (1.0 + NAME_MATCH_BOOST * self.name_share(m.id, &tokens)),
                )
            })
            .collect();
        matches.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        matches
            .into_iter()
            .take(limit)
            .map(|(id, score)| self.hit(id, score))
            .collect()
    }

    fn hit(&self, id: usize, score: f32) -> SearchHit {
        let (server, tool) = &self.docs[id];
        SearchHit {
            server: server.clone(),
            tool: tool.clone(),
            score,
        }
    }

    /// The share of a tool's name words among the query's tokens, 0 to 1.
    fn name_share(&self, id: usize, query_tokens: &BTreeSet<String>) -> f32 {
        let name = &self.name_tokens[id];
        if name.is_empty() {
            return 0.0;
        }
        name.intersection(query_tokens).count() as f32 / name.len() as f32
    }

    /// The query's distinct tokens, each unknown one replaced by the indexed tokens it
    /// begins.
    fn query_tokens(&self, query: &str) -> BTreeSet<String> {
        let mut tokens = BTreeSet::new();
        for token in self.tokenizer.tokenize(query) {
            if self.vocabulary.contains(&token) || token.chars().count() < MIN_PREFIX_CHARS {
                tokens.insert(token);
            } else {
                tokens.extend(
                    self.vocabulary
                        .range(token.clone()..)
                        .take_while(|word| word.starts_with(&token))
                        .cloned(),
                );
            }
        }
        tokens
    }
}

/// Whether `text` has the word "deprecated", in any case.
pub(crate) fn says_deprecated(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|word| word.eq_ignore_ascii_case("deprecated"))
}

/// A query embedding: which tokens are present is all the scorer reads, not their values.
fn embedding(tokens: &BTreeSet<String>) -> Embedding<u32> {
    Embedding(
        tokens
            .iter()
            .map(|token| TokenEmbedding {
                index: <u32 as TokenEmbedder>::embed(token),
                value: 1.0,
            })
            .collect(),
    )
}

/// The `bm25` English tokenizer, after splitting identifiers into words.
struct IdentifierTokenizer {
    inner: DefaultTokenizer,
}

impl Default for IdentifierTokenizer {
    fn default() -> Self {
        Self {
            inner: DefaultTokenizer::new(Language::English),
        }
    }
}

impl IdentifierTokenizer {
    /// The tokens of a name's words, without the joined form.
    fn name_tokens(&self, name: &str) -> BTreeSet<String> {
        self.inner
            .tokenize(&identifier_words(name).join(" "))
            .into_iter()
            .collect()
    }
}

impl Tokenizer for IdentifierTokenizer {
    fn tokenize(&self, input_text: &str) -> Vec<String> {
        self.inner.tokenize(&split_identifiers(input_text))
    }
}

/// Rewrites each compound identifier in `text` as its joined form followed by its words:
/// `read_file` → `readfile read file`, `getFileInfo` → `getfileinfo get File Info`.
/// Other words pass through.
fn split_identifiers(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for piece in text.split_whitespace() {
        let words = identifier_words(piece);
        if words.len() > 1 {
            for word in &words {
                out.push_str(&word.to_lowercase());
            }
            for word in &words {
                out.push(' ');
                out.push_str(word);
            }
        } else {
            out.push_str(piece);
        }
        out.push(' ');
    }
    out
}

/// The words of one whitespace-free piece: split at `_ - . / :` and at case changes
/// (`getHTTPResponse` → `get`, `HTTP`, `Response`); other punctuation is dropped.
fn identifier_words(piece: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for part in piece.split(|c: char| !c.is_alphanumeric() && c != '\'') {
        let chars: Vec<(usize, char)> = part.char_indices().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (at, c) = chars[i];
            let prev = chars[i - 1].1;
            let next_lower = chars.get(i + 1).is_some_and(|(_, n)| n.is_lowercase());
            let boundary = c.is_uppercase()
                && (prev.is_lowercase()
                    || prev.is_numeric()
                    || (prev.is_uppercase() && next_lower));
            if boundary {
                words.push(&part[start..at]);
                start = at;
            }
        }
        if start < part.len() {
            words.push(&part[start..]);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fifteen tools from the reference filesystem and memory servers, with their own
    /// descriptions.
    const CATALOGUE: &[(&str, &str, &str)] = &[
        (
            "filesystem",
            "read_file",
            "Read the complete contents of a file from the file system. Handles various text encodings and provides detailed error messages if the file cannot be read. Use this tool when you need to examine the contents of a single file. Only works within allowed directories.",
        ),
        (
            "filesystem",
            "read_multiple_files",
            "Read the contents of multiple files simultaneously. This is more efficient than reading files one by one when you need to analyze or compare multiple files. Each file's content is returned with its path as a reference. Failed reads for individual files won't stop the entire operation. Only works within allowed directories.",
        ),
        (
            "filesystem",
            "write_file",
            "Create a new file or completely overwrite an existing file with new content. Use with caution as it will overwrite existing files without warning. Handles text content with proper encoding. Only works within allowed directories.",
        ),
        (
            "filesystem",
            "edit_file",
            "Make line-based edits to a text file. Each edit replaces exact line sequences with new content. Returns a git-style diff showing the changes made. Only works within allowed directories.",
        ),
        (
            "filesystem",
            "create_directory",
            "Create a new directory or ensure a directory exists. Can create multiple nested directories in one operation. If the directory already exists, this operation will succeed silently. Perfect for setting up directory structures for projects or ensuring required paths exist. Only works within allowed directories.",
        ),
        (
            "filesystem",
            "list_directory",
            "Get a detailed listing of all files and directories in a specified path. Results clearly distinguish between files and directories with [FILE] and [DIR] prefixes. This tool is essential for understanding directory structure and finding specific files within a directory. Only works within allowed directories.",
        ),
        (
            "filesystem",
            "directory_tree",
            "Get a recursive tree view of files and directories as a JSON structure. Each entry includes 'name', 'type' (file/directory), and 'children' for directories. Files have no children array, while directories always have a children array (which may be empty). The output is formatted with 2-space indentation for readability. Only works within allowed directories.",
        ),
        (
            "filesystem",
            "move_file",
            "Move or rename files and directories. Can move files between directories and rename them in a single operation. If the destination exists, the operation will fail. Works across different directories and can be used for simple renaming within the same directory. Both source and destination must be within allowed directories.",
        ),
        (
            "filesystem",
            "search_files",
            "Recursively search for files and directories matching a pattern. Searches through all subdirectories from the starting path. The search is case-insensitive and matches partial names. Returns full paths to all matching items. Great for finding files when you don't know their exact location. Only searches within allowed directories.",
        ),
        (
            "filesystem",
            "get_file_info",
            "Retrieve detailed metadata about a file or directory. Returns comprehensive information including size, creation time, last modified time, permissions, and type. This tool is perfect for understanding file characteristics without reading the actual content. Only works within allowed directories.",
        ),
        (
            "memory",
            "create_entities",
            "Create multiple new entities in the knowledge graph",
        ),
        (
            "memory",
            "create_relations",
            "Create multiple new relations between entities in the knowledge graph. Relations should be in active voice",
        ),
        (
            "memory",
            "add_observations",
            "Add new observations to existing entities in the knowledge graph",
        ),
        (
            "memory",
            "search_nodes",
            "Search for nodes in the knowledge graph based on a query",
        ),
        (
            "memory",
            "open_nodes",
            "Open specific nodes in the knowledge graph by their names",
        ),
        ("memory", "read_graph", "Read the entire knowledge graph"),
    ];

    fn index() -> SearchIndex {
        SearchIndex::new(CATALOGUE.iter().copied())
    }

    fn tools(hits: &[SearchHit]) -> Vec<&str> {
        hits.iter().map(|h| h.tool.as_str()).collect()
    }

    #[test]
    fn obvious_tool_ranks_first() {
        let index = index();
        let cases = [
            ("read file", "read_file"),
            ("readFile", "read_file"),
            ("read_file", "read_file"),
            ("ReadFile", "read_file"),
            ("read multiple files", "read_multiple_files"),
            ("write file", "write_file"),
            ("edit", "edit_file"),
            ("list dir", "list_directory"),
            ("mkdir create directory", "create_directory"),
            ("directory tree", "directory_tree"),
            ("rename", "move_file"),
            ("file metadata size permissions", "get_file_info"),
            ("search memory graph", "search_nodes"),
            ("knowledge graph relations", "create_relations"),
            ("add observation", "add_observations"),
            ("entities", "create_entities"),
            ("open node", "open_nodes"),
            ("read entire graph", "read_graph"),
        ];
        for (query, expected) in cases {
            let hits = index.search(query, None, 5);
            assert_eq!(
                hits.first().map(|h| h.tool.as_str()),
                Some(expected),
                "query {query:?} gave {:?}",
                hits.iter().map(|h| (&h.tool, h.score)).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn hits_are_ranked_positive_and_limited() {
        let index = index();
        let hits = index.search("file", None, 100);
        assert!(hits.len() > 5, "{:?}", tools(&hits));
        assert!(hits.iter().all(|h| h.score > 0.0));
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(index.search("file", None, 3), hits[..3]);
        assert!(index.search("file", None, 0).is_empty());
        assert!(index.search("zebra quantum", None, 10).is_empty());
        assert!(
            index.search("the of and", None, 10).is_empty(),
            "stop words only"
        );
    }

    #[test]
    fn server_filter_keeps_that_server_only() {
        let index = index();
        let hits = index.search("search", Some("memory"), 10);
        assert_eq!(tools(&hits), ["search_nodes"]);
        let hits = index.search("read", Some("filesystem"), 10);
        assert_eq!(hits[0].tool, "read_file");
        assert!(hits.iter().all(|h| h.server == "filesystem"));
        assert!(index.search("read", Some("nope"), 10).is_empty());
        // The server's name is indexed too.
        let hits = index.search("memory", None, 100);
        assert_eq!(hits.len(), 6);
        assert!(hits.iter().all(|h| h.server == "memory"));
    }

    #[test]
    fn empty_query_lists_catalogue_order() {
        let index = index();
        let hits = index.search("", None, 3);
        assert_eq!(
            tools(&hits),
            ["read_file", "read_multiple_files", "write_file"]
        );
        assert!(hits.iter().all(|h| h.score == 0.0));
        let hits = index.search("  ", Some("memory"), 2);
        assert_eq!(tools(&hits), ["create_entities", "create_relations"]);
        assert_eq!(index.search("", None, 100).len(), CATALOGUE.len());
        assert!(SearchIndex::default().search("", None, 10).is_empty());
        assert!(SearchIndex::default().search("read", None, 10).is_empty());
    }

    #[test]
    fn ties_keep_catalogue_order() {
        let index = SearchIndex::new([
            ("beta", "fetch", "Fetch a URL"),
            ("alpha", "fetch", "Fetch a URL"),
            ("gamma", "fetch", "Fetch a URL"),
        ]);
        let hits = index.search("fetch", None, 10);
        let servers: Vec<&str> = hits.iter().map(|h| h.server.as_str()).collect();
        assert_eq!(servers, ["beta", "alpha", "gamma"]);
        assert_eq!(hits[0].score, hits[2].score);
    }

    #[test]
    fn identifiers_split_into_words() {
        let cases = [
            ("read_file", vec!["read", "file"]),
            ("getFileInfo", vec!["get", "File", "Info"]),
            ("get-item", vec!["get", "item"]),
            ("getHTTPResponse", vec!["get", "HTTP", "Response"]),
            ("repos.list", vec!["repos", "list"]),
            ("file's", vec!["file's"]),
            ("[DIR]", vec!["DIR"]),
            ("v2", vec!["v2"]),
        ];
        for (piece, expected) in cases {
            assert_eq!(identifier_words(piece), expected, "{piece}");
        }
        assert_eq!(
            split_identifiers("Use read_file now"),
            "Use readfile read file now "
        );
    }

    #[test]
    fn index_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SearchIndex>();
    }
}
