//! `mcp-kernel audit verify FILE`: the first line that was altered, removed or moved.

use std::io::{BufRead as _, Read as _};
use std::path::Path;

use super::line::{self, GENESIS, MAX_LINE_BYTES, Unsealed};

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditVerdict {
    /// Every line is unaltered, in order, with no gap, from `seq` 1.
    Intact {
        /// Lines checked (0 for an empty file).
        lines: u64,
        /// The last line's `hash` (the genesis hash for an empty file): keep it elsewhere to
        /// detect later truncation, which the chain alone cannot show.
        last_hash: String,
    },
    /// The first bad line.
    Broken {
        /// Its 1-based line number in the file.
        line: u64,
        /// What is wrong with it, in words.
        reason: String,
    },
}

impl AuditVerdict {
    /// The process exit code of `audit verify`: 0 intact, 1 broken.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Intact { .. } => 0,
            Self::Broken { .. } => 1,
        }
    }
}

impl std::fmt::Display for AuditVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Intact { lines, last_hash } => write!(
                f,
                "intact: {lines} lines, each unaltered and in order from seq 1; last hash \
                 {last_hash}\nnote: lines removed from the end cannot be detected by the chain \
                 alone; compare the last seq and hash with a copy kept elsewhere"
            ),
            Self::Broken { line, reason } => write!(f, "broken at line {line}: {reason}"),
        }
    }
}

/// Checks the log at `path` line by line: each line's hash matches its content (else it was
/// altered), its `seq` follows the previous line's (else lines were removed before it or
/// moved; a later line holding the missing `seq` tells which), and its `prev` is the
/// previous line's hash. Memory is bounded by [`MAX_LINE_BYTES`] whatever the file's size.
///
/// # Errors
/// The file cannot be opened or read.
pub fn audit_verify(path: &Path) -> std::io::Result<AuditVerdict> {
    let mut lines = Lines::open(path)?;
    let mut previous = line::ChainEnd::genesis();
    let mut number = 0;
    while let Some(bytes) = lines.next()? {
        number += 1;
        let broken = |reason: String| {
            Ok(AuditVerdict::Broken {
                line: number,
                reason,
            })
        };
        let bytes = match bytes {
            Next::Line(bytes) => bytes,
            Next::TooLong => return broken(format!("longer than {MAX_LINE_BYTES} bytes")),
            Next::Unterminated => {
                return broken("incomplete: the file ends inside it (a write was cut off)".into());
            }
        };
        let (record, hash) = match line::unseal(&bytes) {
            Ok(sealed) => sealed,
            Err(Unsealed::Altered) => return broken(Unsealed::Altered.to_string()),
            Err(error @ Unsealed::Malformed(_)) => {
                return broken(format!("{error} (the line was altered)"));
            }
        };
        let expected = previous.seq + 1;
        if record.seq > expected {
            return broken(match find_seq(path, number, expected)? {
                Some(at) => format!(
                    "holds seq {} where seq {expected} was expected; seq {expected} is at line \
                     {at}: lines were reordered",
                    record.seq
                ),
                None => format!(
                    "holds seq {} where seq {expected} was expected: {} line(s) (seq {expected} \
                     to {}) were removed before it",
                    record.seq,
                    record.seq - expected,
                    record.seq - 1
                ),
            });
        }
        if record.seq < expected {
            return broken(format!(
                "holds seq {} after seq {}: lines were reordered or duplicated",
                record.seq, previous.seq
            ));
        }
        if record.prev != previous.hash {
            return broken(if number == 1 {
                format!("its prev is not the genesis hash {GENESIS}")
            } else {
                format!(
                    "its prev does not match the hash of line {}: the chain was rewritten here",
                    number - 1
                )
            });
        }
        previous = line::ChainEnd {
            seq: record.seq,
            hash,
        };
    }
    Ok(AuditVerdict::Intact {
        lines: number,
        last_hash: previous.hash,
    })
}

/// The line number, after line `after`, of the first line holding `seq`, if any.
fn find_seq(path: &Path, after: u64, seq: u64) -> std::io::Result<Option<u64>> {
    let mut lines = Lines::open(path)?;
    let mut number = 0;
    while let Some(read) = lines.next()? {
        number += 1;
        if number <= after {
            continue;
        }
        if let Next::Line(bytes) = read
            && let Ok((record, _)) = line::unseal(&bytes)
            && record.seq == seq
        {
            return Ok(Some(number));
        }
    }
    Ok(None)
}

/// One read of [`Lines::next`].
pub(super) enum Next {
    /// A whole line, without its newline.
    Line(Vec<u8>),
    /// A line over [`MAX_LINE_BYTES`] (skipped).
    TooLong,
    /// The end of the file, inside a line.
    Unterminated,
}

/// The file's lines, each at most [`MAX_LINE_BYTES`] in memory.
pub(super) struct Lines {
    reader: std::io::BufReader<std::fs::File>,
}

impl Lines {
    pub(super) fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            reader: std::io::BufReader::new(std::fs::File::open(path)?),
        })
    }

    pub(super) fn next(&mut self) -> std::io::Result<Option<Next>> {
        let mut bytes = Vec::new();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut bytes)?;
        if read == 0 {
            return Ok(None);
        }
        if bytes.pop() == Some(b'\n') {
            return Ok(Some(Next::Line(bytes)));
        }
        if bytes.len() < MAX_LINE_BYTES {
            return Ok(Some(Next::Unterminated));
        }
        // Skip the rest of the long line.
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            if let Some(at) = buffer.iter().position(|b| *b == b'\n') {
                self.reader.consume(at + 1);
                break;
            }
            let len = buffer.len();
            self.reader.consume(len);
        }
        Ok(Some(Next::TooLong))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::line::{ExecuteRecord, Line, seal};

    fn log(n: u64, tenant: &str) -> Vec<Vec<u8>> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let (bytes, hash) = seal(&Line {
                    seq,
                    time: line::now(),
                    entry: line::Entry::Execute(ExecuteRecord {
                        tenant: tenant.into(),
                        session: Some("default".into()),
                        code_sha256: None,
                        tools: Vec::new(),
                        tools_unlisted: 0,
                        duration_ms: seq,
                        status: "ok".into(),
                        result_bytes: 0,
                        cache: None,
                    }),
                    prev: std::mem::take(&mut prev),
                });
                prev = hash;
                bytes
            })
            .collect()
    }

    fn verify(lines: &[Vec<u8>]) -> AuditVerdict {
        let dir = std::env::temp_dir().join(format!(
            "mcpk-audit-verify-{}-{}",
            std::process::id(),
            lines.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{:x}.jsonl",
            lines.iter().map(Vec::len).sum::<usize>()
        ));
        let mut file = lines.join(&b'\n');
        if !lines.is_empty() {
            file.push(b'\n');
        }
        std::fs::write(&path, file).unwrap();
        let verdict = audit_verify(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        verdict
    }

    fn broken_at(verdict: &AuditVerdict) -> (u64, &str) {
        match verdict {
            AuditVerdict::Broken { line, reason } => (*line, reason),
            AuditVerdict::Intact { .. } => panic!("intact"),
        }
    }

    #[test]
    fn an_intact_chain_passes_and_each_tampering_names_its_first_line() {
        let lines = log(6, "t");
        assert!(matches!(
            verify(&lines),
            AuditVerdict::Intact { lines: 6, .. }
        ));
        assert!(matches!(verify(&[]), AuditVerdict::Intact { lines: 0, .. }));

        let mut altered = lines.clone();
        altered[2] = String::from_utf8(altered[2].clone())
            .unwrap()
            .replace("\"duration_ms\":3", "\"duration_ms\":4")
            .into_bytes();
        let verdict = verify(&altered);
        assert_eq!(broken_at(&verdict).0, 3);
        assert!(broken_at(&verdict).1.contains("altered"), "{verdict}");

        let mut removed = lines.clone();
        removed.remove(3);
        let verdict = verify(&removed);
        assert_eq!(broken_at(&verdict).0, 4);
        assert!(broken_at(&verdict).1.contains("removed"), "{verdict}");

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        let verdict = verify(&swapped);
        assert_eq!(broken_at(&verdict).0, 2);
        assert!(
            broken_at(&verdict).1.contains("seq 2 is at line 3"),
            "{verdict}"
        );

        let verdict = verify(&lines[1..]);
        assert_eq!(broken_at(&verdict).0, 1);
        assert!(broken_at(&verdict).1.contains("removed"), "{verdict}");

        let mut duplicated = lines.clone();
        duplicated.insert(3, lines[2].clone());
        let verdict = verify(&duplicated);
        assert_eq!(broken_at(&verdict).0, 4);
        assert!(broken_at(&verdict).1.contains("duplicated"), "{verdict}");

        // A chain rebuilt from line 3 on with a different history: seq and hashes are
        // self-consistent, but the link to line 2 is not.
        let mut rebuilt = lines[..2].to_vec();
        rebuilt.extend(log(6, "other").into_iter().skip(2));
        let verdict = verify(&rebuilt);
        assert_eq!(
            broken_at(&verdict),
            (
                3,
                "its prev does not match the hash of line 2: the chain was rewritten here"
            )
        );
    }
}
