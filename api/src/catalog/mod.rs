//! The tool catalogue: every tool of every ready upstream, a version hash, ranked search, and
//! the entry shapes of the three detail levels.
//!
//! - `signature`: TypeScript-style signatures and `.d.ts` declarations from JSON Schema;
//! - `rank`: BM25 ranking over tool names and descriptions.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use rmcp::model::Tool;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub(crate) use mcpk_session::Detail;

mod observed;
mod rank;
mod signature;

use rank::SearchIndex;

use crate::access::Servers;
pub(crate) use signature::{declaration, signature};

/// One upstream tool, with its TypeScript signature and `.d.ts` declaration generated once,
/// when the catalogue version that holds it is built (never per listing or search), and the
/// return type learned from its results while this version is current when it declares no
/// `outputSchema` (`observed`).
#[derive(Debug)]
pub(crate) struct CatalogTool {
    pub(crate) server: String,
    pub(crate) tool: Tool,
    /// `signature(server, tool)`: one TypeScript line, `Promise<unknown>` without an
    /// `outputSchema`; [`CatalogTool::current_signature`] adds what was learned.
    pub(crate) signature: String,
    /// `declaration(server, tool)`: the `.d.ts` text with docs.
    pub(crate) declaration: String,
    /// What each tenant's calls taught, kept apart: a learned type shows field names and
    /// small enums of values, which are the tenant's data (at most [`MAX_OBSERVED_TENANTS`]).
    observed: Mutex<HashMap<String, observed::Observed>>,
}

/// Tenants whose results one tool learns from, per catalogue version; later tenants' calls
/// teach nothing (their listings show `Promise<unknown>`).
const MAX_OBSERVED_TENANTS: usize = 64;

/// The return type of a signature or declaration generated without an `outputSchema`.
const UNKNOWN_RETURN: &str = "Promise<unknown>";

impl CatalogTool {
    /// The tool with its signature and declaration generated.
    pub(crate) fn new(server: String, tool: Tool) -> Self {
        Self {
            signature: signature(&server, &tool),
            declaration: declaration(&server, &tool),
            server,
            tool,
            observed: Mutex::default(),
        }
    }

    /// Learns from one successful result (the value agent code received), when the tool
    /// declares no `outputSchema`. Keeps only its shape; see [`observed`] for what is kept
    /// and the bounds.
    pub(crate) fn observe(&self, tenant: &str, value: &Value) {
        if self.tool.output_schema.is_some() {
            return;
        }
        let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(learned) = observed.get_mut(tenant) {
            learned.add(value);
        } else if observed.len() < MAX_OBSERVED_TENANTS {
            observed.entry(tenant.to_owned()).or_default().add(value);
        }
    }

    /// The learned return type and the number of results it was learned from, or `None`
    /// when the tool declares an `outputSchema` or has not returned yet.
    fn observed_type(&self, tenant: &str) -> Option<(String, u32)> {
        if self.tool.output_schema.is_some() {
            return None;
        }
        let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        let observed = observed.get_mut(tenant)?;
        let samples = observed.samples();
        observed.type_text().map(|t| (t.to_owned(), samples))
    }

    /// [`CatalogTool::signature`] with the learned return type, marked
    /// `Promise<T> /* observed */`, in place of `Promise<unknown>`, as `tenant`'s calls
    /// taught it.
    pub(crate) fn current_signature(&self, tenant: &str) -> Cow<'_, str> {
        match (
            self.observed_type(tenant),
            self.signature.strip_suffix(UNKNOWN_RETURN),
        ) {
            (Some((returns, _)), Some(call)) => {
                Cow::Owned(format!("{call}Promise<{returns}> /* observed */"))
            }
            _ => Cow::Borrowed(&self.signature),
        }
    }

    /// [`CatalogTool::declaration`] with the learned return type in place of
    /// `Promise<unknown>`, and a comment saying how many of `tenant`'s results it was learned
    /// from.
    pub(crate) fn current_declaration(&self, tenant: &str) -> Cow<'_, str> {
        let pattern = format!("{UNKNOWN_RETURN};");
        match self.observed_type(tenant) {
            Some((returns, samples)) if self.declaration.contains(&pattern) => {
                Cow::Owned(self.declaration.replacen(
                    &pattern,
                    &format!(
                        "Promise<{returns}>; /* observed in {samples} result{}: the server declares no outputSchema */",
                        if samples == 1 { "" } else { "s" }
                    ),
                    1,
                ))
            }
            _ => Cow::Borrowed(&self.declaration),
        }
    }
}

/// An immutable snapshot, rebuilt whenever any upstream's tool list or availability changes.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// Sorted by server, then tool name.
    pub(crate) tools: Vec<CatalogTool>,
    /// Hex SHA-256 over the canonical JSON of `tools`; changes when any tool list changes.
    pub(crate) version: String,
    index: SearchIndex,
}

/// Default and largest number of search results.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;

impl Catalog {
    /// The version hash of `tools` (server name and tool), sorting them into catalogue order:
    /// hex SHA-256 over the canonical JSON of each. Cheap next to generating signatures, so a
    /// rebuild that finds the version unchanged keeps the old snapshot.
    pub(crate) fn version_of(tools: &mut [(String, Tool)]) -> String {
        tools.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
        let mut hasher = Sha256::new();
        for (server, tool) in tools.iter() {
            let entry = json!([server, tool]);
            hasher.update(serde_json::to_vec(&entry).unwrap_or_default());
            hasher.update(b"\n");
        }
        let mut version = String::with_capacity(64);
        for byte in hasher.finalize() {
            let _ = write!(version, "{byte:02x}");
        }
        version
    }

    /// The snapshot of `tools` (server name and tool), generating each tool's signature and
    /// declaration.
    pub(crate) fn new(mut tools: Vec<(String, Tool)>) -> Self {
        let version = Self::version_of(&mut tools);
        let tools: Vec<CatalogTool> = tools
            .into_iter()
            .map(|(server, tool)| CatalogTool::new(server, tool))
            .collect();
        let index = SearchIndex::new(tools.iter().map(|t| {
            (
                t.server.as_str(),
                t.tool.name.as_ref(),
                t.tool.description.as_deref().unwrap_or_default(),
            )
        }));
        Self {
            tools,
            version,
            index,
        }
    }

    /// Hex SHA-256 of the canonical JSON of `server.name`'s input schema, or `None` when the
    /// catalogue has no such tool. Skills record it to notice a changed tool.
    pub(crate) fn schema_sha256(&self, server: &str, name: &str) -> Option<String> {
        let tool = self.find(server, name)?;
        let digest =
            Sha256::digest(serde_json::to_vec(&tool.tool.input_schema).unwrap_or_default());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            let _ = write!(hex, "{byte:02x}");
        }
        Some(hex)
    }

    /// The tool `name` of `server`.
    /// The tool `server.name`; else the one tool of `server` whose name equals `name` once
    /// case, `-`, `_` and `.` are ignored (`getSum` for `get-sum`), as calls resolve it.
    pub(crate) fn find(&self, server: &str, name: &str) -> Option<&CatalogTool> {
        self.tools
            .iter()
            .find(|t| t.server == server && t.tool.name == name)
            .or_else(|| {
                let wanted = spelling_key(name);
                let mut alike = self
                    .tools
                    .iter()
                    .filter(|t| t.server == server && spelling_key(&t.tool.name) == wanted);
                match (alike.next(), alike.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            })
    }

    /// Every tool `access` allows, or one server's, in catalogue order.
    pub(crate) fn list(&self, server: Option<&str>, access: &Servers<'_>) -> Vec<&CatalogTool> {
        self.tools
            .iter()
            .filter(|t| server.is_none_or(|s| t.server == s) && access.allows(&t.server))
            .collect()
    }

    /// Ranked search over the tools `access` allows; `limit` defaults to 10 and is capped at
    /// 100.
    pub(crate) fn search(
        &self,
        query: &str,
        server: Option<&str>,
        limit: Option<usize>,
        access: &Servers<'_>,
    ) -> Vec<&CatalogTool> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        self.index
            .search_where(
                query,
                |s| server.is_none_or(|only| only == s) && access.allows(s),
                limit,
            )
            .into_iter()
            .filter_map(|hit| self.find(&hit.server, &hit.tool))
            .collect()
    }
}

/// The first sentence of a description, at most 160 characters. A deprecation notice later in
/// the description is kept: its sentence is appended (an agent must not pick a deprecated tool
/// for want of the word).
pub(crate) fn summary(description: &str) -> String {
    let first = description.trim().split("\n\n").next().unwrap_or_default();
    let mut sentence = first
        .find(". ")
        .map_or(first, |i| &first[..=i])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if !rank::says_deprecated(&sentence)
        && let Some(start) = description.find("DEPRECATED").or_else(|| {
            let lower = description.to_ascii_lowercase();
            lower.find("deprecated")
        })
    {
        let start = description[..start].rfind(". ").map_or(0, |i| i + 2);
        let notice = &description[start..];
        let notice = notice.find(". ").map_or(notice, |i| &notice[..=i]);
        sentence.push(' ');
        sentence.push_str(&notice.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    if sentence.chars().count() > 160 {
        let cut: String = sentence.chars().take(159).collect();
        format!("{cut}…")
    } else {
        sentence
    }
}

/// The JSON entry of one tool at `detail`.
pub(crate) fn entry(t: &CatalogTool, detail: Detail, tenant: &str) -> Value {
    let description = t.tool.description.as_deref().unwrap_or_default();
    match detail {
        Detail::Names => json!({"server": t.server, "name": t.tool.name}),
        Detail::Signatures => json!({
            "server": t.server,
            "name": t.tool.name,
            "signature": t.current_signature(tenant),
            "description": summary(description),
        }),
        Detail::Full => json!({
            "server": t.server,
            "name": t.tool.name,
            "title": t.tool.title,
            "description": description,
            "signature": t.current_signature(tenant),
            "inputSchema": t.tool.input_schema,
            "outputSchema": t.tool.output_schema,
            "annotations": t.tool.annotations,
        }),
    }
}

/// Compact text for the `search_tools` MCP tool: one line per tool for `names`, a comment
/// line plus the signature for `signatures`, the `.d.ts` declaration for `full`.
pub(crate) fn render(tools: &[&CatalogTool], detail: Detail, tenant: &str) -> String {
    let mut out = String::new();
    for t in tools {
        match detail {
            Detail::Names => {
                let _ = writeln!(out, "{}.{}", t.server, t.tool.name);
            }
            Detail::Signatures => {
                let summary = summary(t.tool.description.as_deref().unwrap_or_default());
                if !summary.is_empty() {
                    let _ = writeln!(out, "// {summary}");
                }
                let _ = writeln!(out, "{}", listing_signature(&t.current_signature(tenant)));
            }
            Detail::Full => {
                let _ = writeln!(out, "{}", t.current_declaration(tenant));
            }
        }
    }
    out
}

/// Return types longer than this many characters are cut to their first level in a
/// `signatures` listing.
const MAX_RETURN_TYPE_CHARS: usize = 48;

/// `signature` as a `signatures` listing shows it, in the form of the call: `(args: {…})`
/// becomes `({…})`, and a return type longer than [`MAX_RETURN_TYPE_CHARS`] is cut to its
/// first level: object types nested deeper than the result object become `{…}`
/// (`Promise<{entities: {…}[]; relations: {…}[]}>`), so the listing says what a call resolves
/// to in a few tokens. The parameters are kept whole: an agent needs them to write the call.
pub(crate) fn listing_signature(signature: &str) -> String {
    let signature = signature.replacen("(args: ", "(", 1);
    let Some(start) = signature.rfind("): Promise<") else {
        return signature;
    };
    let (call, returns) = signature.split_at(start);
    if returns.chars().count() <= MAX_RETURN_TYPE_CHARS {
        return signature;
    }
    let mut out = String::with_capacity(signature.len());
    out.push_str(call);
    let mut depth = 0usize;
    for c in returns.chars() {
        match c {
            '{' => {
                depth += 1;
                match depth {
                    1 => out.push('{'),
                    2 => out.push_str("{…}"),
                    _ => {}
                }
            }
            '}' => {
                if depth == 1 {
                    out.push('}');
                }
                depth = depth.saturating_sub(1);
            }
            _ if depth <= 1 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The saved skills matching `query`, best first, at most `limit` (every skill, in library
/// order, for an empty query). Ranked by the same BM25 index as tools, over each skill's name
/// and description.
pub(crate) fn rank_skills<'a>(
    skills: &'a [mcpk_session::StoredSkill],
    query: &str,
    limit: usize,
) -> Vec<&'a mcpk_session::StoredSkill> {
    if skills.is_empty() {
        return Vec::new();
    }
    let index = SearchIndex::new(
        skills
            .iter()
            .map(|s| ("skills", s.name.as_str(), s.description.as_str())),
    );
    index
        .search(query, None, limit)
        .into_iter()
        .filter_map(|hit| skills.iter().find(|s| s.name == hit.tool))
        .collect()
}

/// A skill's one-line TypeScript-style signature:
/// `skills.<name>(<params>): Promise<unknown> — <description summary>`.
pub(crate) fn skill_signature(skill: &mcpk_session::StoredSkill) -> String {
    let mut line = format!(
        "skills.{}({}): Promise<unknown>",
        skill.name,
        skill.params.join(", ")
    );
    let summary = summary(&skill.description);
    if !summary.is_empty() {
        let _ = write!(line, " — {summary}");
    }
    line
}

/// A tool name with case, `-`, `_` and `.` ignored: how code that cannot write `get-sum` as
/// an identifier spells it (`getSum`, `get_sum`).
pub(crate) fn spelling_key(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tool(name: &str, description: &str) -> Tool {
        let schema = json!({"type": "object", "properties": {"path": {"type": "string"}}});
        let Value::Object(schema) = schema else {
            unreachable!()
        };
        Tool::new(name.to_owned(), description.to_owned(), Arc::new(schema))
    }

    #[test]
    fn the_version_changes_with_any_tool_list_and_not_with_order() {
        let a = ("fs".to_owned(), tool("read_file", "Read a file."));
        let b = ("mem".to_owned(), tool("read_graph", "Read the graph."));
        let v1 = Catalog::new(vec![a.clone(), b.clone()]).version;
        let v2 = Catalog::new(vec![b.clone(), a.clone()]).version;
        assert_eq!(v1, v2);
        assert_eq!(Catalog::version_of(&mut [b.clone(), a.clone()]), v1);
        let mut changed = b.clone();
        changed.1.description = Some("Read the whole graph.".into());
        assert_ne!(Catalog::new(vec![a.clone(), changed]).version, v1);
        assert_ne!(Catalog::new(vec![a]).version, v1);
        assert_eq!(v1.len(), 64);
    }

    #[test]
    fn signatures_are_generated_with_the_snapshot() {
        let catalog = Catalog::new(vec![("fs".to_owned(), tool("read_file", "Read a file."))]);
        let t = &catalog.tools[0];
        assert_eq!(t.signature, signature("fs", &t.tool));
        assert_eq!(t.declaration, declaration("fs", &t.tool));
        assert_eq!(
            entry(t, Detail::Signatures, "t")["signature"],
            t.signature.as_str()
        );
        assert!(render(&[t], Detail::Full, "t").contains(&t.declaration));
    }

    #[test]
    fn listings_show_the_call_form_and_cut_long_return_types_to_their_first_level() {
        let graph = "servers.memory.read_graph(args: {}): Promise<{entities: {name: string; entityType: string; observations: string[]}[]; relations: {from: string; to: string; relationType: string}[]}>";
        assert_eq!(
            listing_signature(graph),
            "servers.memory.read_graph({}): Promise<{entities: {…}[]; relations: {…}[]}>"
        );
        let media = "servers.fs.read_media_file(args: {path: string}): Promise<{content: ({type: \"image\" | \"audio\"; data: string; mimeType: string} | {type: \"resource\"; resource: {uri: string; blob: string; mimeType?: string}})[]}>";
        assert_eq!(
            listing_signature(media),
            "servers.fs.read_media_file({path: string}): Promise<{content: ({…} | {…})[]}>"
        );
        // Short return types, and the parameters, are kept whole.
        assert_eq!(
            listing_signature(
                "servers.fs.read_text_file(args: {path: string; head?: {n: number}}): Promise<{content: string}>"
            ),
            "servers.fs.read_text_file({path: string; head?: {n: number}}): Promise<{content: string}>"
        );
        assert_eq!(
            listing_signature("servers.a.b(args: {}): Promise<unknown>"),
            "servers.a.b({}): Promise<unknown>"
        );
    }

    #[test]
    fn summaries_take_the_first_sentence() {
        assert_eq!(summary("Read a file. Use it for text."), "Read a file.");
        assert_eq!(
            summary("  Line one\n  continues.\n\nSecond paragraph."),
            "Line one continues."
        );
        assert_eq!(summary(&"x".repeat(300)).chars().count(), 160);
        // server-filesystem's `read_file`.
        assert_eq!(
            summary(
                "Read the complete contents of a file as text. DEPRECATED: Use read_text_file instead."
            ),
            "Read the complete contents of a file as text. DEPRECATED: Use read_text_file instead."
        );
        assert_eq!(
            summary("Old. Lists things. This tool is deprecated, use list2. More."),
            "Old. This tool is deprecated, use list2."
        );
    }
}
