//! `mcp-kernel audit report FILE [--since T] [--until T] [--json]`: executions, errors and
//! tool use per tenant.
//!
//! It reads every line that parses as an audit line, hash-checked or not: run `audit verify`
//! for integrity. Lines count when `since <= time < until`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::line::{self, Entry, Line};
use super::verify::{Lines, Next};

/// Why `audit report` could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditReportError {
    /// `--since` or `--until` is not an RFC 3339 time.
    #[error("{flag}: {message}")]
    Time {
        /// The flag.
        flag: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The file cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The compliance summary of one audit log. JSON (`--json`): this struct's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuditReport {
    /// `--since`, as given (inclusive).
    pub since: Option<String>,
    /// `--until`, as given (exclusive).
    pub until: Option<String>,
    /// The time of the first and last execute line counted.
    pub first: Option<String>,
    /// See `first`.
    pub last: Option<String>,
    /// `execute` calls counted.
    pub executions: u64,
    /// Records the log says were dropped (its `dropped` lines in the period).
    pub dropped: u64,
    /// Lines that are not audit lines (run `audit verify`), in the whole file.
    pub unreadable_lines: u64,
    /// Per tenant, by name.
    pub tenants: Vec<TenantReport>,
}

/// One tenant's part of an [`AuditReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TenantReport {
    /// The tenant.
    pub tenant: String,
    /// `execute` calls.
    pub executions: u64,
    /// Calls whose status is not `ok` (errors, timeouts, rejected and cancelled calls).
    pub errors: u64,
    /// Calls answered from the result cache.
    pub cache_hits: u64,
    /// Upstream tool calls by server and tool, by name.
    pub tools: Vec<ToolUse>,
    /// Tool calls past the 256 listed per execute (not named in the log).
    pub tools_unlisted: u64,
}

/// Calls of one upstream tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ToolUse {
    /// The upstream server.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// How many calls.
    pub calls: u64,
}

/// Calls per (server, tool).
type ToolTally = BTreeMap<(String, String), u64>;

/// Reads the log at `path` and sums the lines whose time is in `[since, until)` (RFC 3339,
/// any offset; either bound may be absent).
///
/// # Errors
/// A bound that is not an RFC 3339 time, or the file cannot be read.
pub fn audit_report(
    path: &Path,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<AuditReport, AuditReportError> {
    let bound = |flag, text: Option<&str>| {
        text.map(|t| {
            line::parse_time(t).map_err(|message| AuditReportError::Time { flag, message })
        })
        .transpose()
    };
    let (from, to) = (bound("--since", since)?, bound("--until", until)?);
    let read_error = |source| AuditReportError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut report = AuditReport {
        since: since.map(str::to_owned),
        until: until.map(str::to_owned),
        ..AuditReport::default()
    };
    let mut tenants: BTreeMap<String, (TenantReport, ToolTally)> = BTreeMap::new();
    let mut lines = Lines::open(path).map_err(read_error)?;
    while let Some(next) = lines.next().map_err(read_error)? {
        let parsed = match next {
            Next::Line(bytes) => serde_json::from_slice::<Line>(&bytes).ok().and_then(|l| {
                let at = line::parse_time(&l.time).ok()?;
                Some((l, at))
            }),
            Next::TooLong | Next::Unterminated => None,
        };
        let Some((record, at)) = parsed else {
            report.unreadable_lines += 1;
            continue;
        };
        if from.is_some_and(|from| at < from) || to.is_some_and(|to| at >= to) {
            continue;
        }
        let execute = match record.entry {
            Entry::Dropped { dropped } => {
                report.dropped += dropped;
                continue;
            }
            Entry::Execute(execute) => execute,
        };
        report.executions += 1;
        report.first.get_or_insert_with(|| record.time.clone());
        report.last = Some(record.time);
        let (tenant, tools) = tenants.entry(execute.tenant.clone()).or_default();
        tenant.executions += 1;
        tenant.errors += u64::from(execute.status != "ok");
        tenant.cache_hits += u64::from(execute.cache.is_some());
        tenant.tools_unlisted += execute.tools_unlisted;
        for tool in execute.tools {
            *tools.entry((tool.server, tool.tool)).or_default() += 1;
        }
    }
    report.tenants = tenants
        .into_iter()
        .map(|(name, (mut tenant, tools))| {
            tenant.tenant = name;
            tenant.tools = tools
                .into_iter()
                .map(|((server, tool), calls)| ToolUse {
                    server,
                    tool,
                    calls,
                })
                .collect();
            tenant
        })
        .collect();
    Ok(report)
}

impl std::fmt::Display for AuditReport {
    /// Two tables: executions per tenant, then tool calls per tenant.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let period = match (&self.since, &self.until) {
            (None, None) => "all lines".to_owned(),
            (Some(s), None) => format!("from {s}"),
            (None, Some(u)) => format!("until {u} (exclusive)"),
            (Some(s), Some(u)) => format!("from {s} until {u} (exclusive)"),
        };
        writeln!(f, "period: {period}")?;
        if let (Some(first), Some(last)) = (&self.first, &self.last) {
            writeln!(f, "executions: {} ({first} to {last})", self.executions)?;
        } else {
            writeln!(f, "executions: 0")?;
        }
        writeln!(
            f,
            "dropped records: {}; unreadable lines: {}",
            self.dropped, self.unreadable_lines
        )?;
        let mut rows = vec![vec![
            "TENANT".to_owned(),
            "EXECUTIONS".to_owned(),
            "ERRORS".to_owned(),
            "CACHE HITS".to_owned(),
        ]];
        for t in &self.tenants {
            rows.push(vec![
                t.tenant.clone(),
                t.executions.to_string(),
                t.errors.to_string(),
                t.cache_hits.to_string(),
            ]);
        }
        writeln!(f)?;
        f.write_str(&table(&rows))?;
        let mut rows = vec![vec![
            "TENANT".to_owned(),
            "SERVER".to_owned(),
            "TOOL".to_owned(),
            "CALLS".to_owned(),
        ]];
        for t in &self.tenants {
            for tool in &t.tools {
                rows.push(vec![
                    t.tenant.clone(),
                    tool.server.clone(),
                    tool.tool.clone(),
                    tool.calls.to_string(),
                ]);
            }
            if t.tools_unlisted > 0 {
                rows.push(vec![
                    t.tenant.clone(),
                    "(unlisted)".to_owned(),
                    String::new(),
                    t.tools_unlisted.to_string(),
                ]);
            }
        }
        writeln!(f)?;
        if rows.len() == 1 {
            writeln!(f, "no tool calls")
        } else {
            f.write_str(&table(&rows))
        }
    }
}

/// `rows` as left-aligned columns two spaces apart, one line each.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
