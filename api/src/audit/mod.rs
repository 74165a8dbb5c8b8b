//! The audit log (`serve --audit-log FILE`): one hash-chained JSON line per `execute` call.
//!
//! ```text
//! KernelServer::execute ─ record() ─▶ bounded queue (AUDIT_QUEUE_RECORDS) ─▶ writer task
//!                         full? count it (dropped)                          seal + write + flush
//!                                                                           (spawn_blocking)
//! ```
//!
//! A call never waits for the log: [`Audit::record`] only `try_send`s. The one writer task
//! takes what is queued (up to [`MAX_BATCH_RECORDS`] at a time), seals each line onto the
//! chain (see `line.rs` for the format and the hash) and appends the batch with one write.
//! Records dropped because the queue was full, or lost because a write failed, are counted
//! and written as one `{"event":"dropped","dropped":N}` line before the next records, so a
//! loss is visible in the log itself and in its chain.
//!
//! A failed write (a full disk) crashes nothing: the file is cut back to its last complete
//! line (so the chain stays whole), the chain does not advance, the error is kept for
//! [`Audit::health`] until a later write succeeds, and
//! `mcpk_audit_write_errors_total` counts it. On start with an existing file the chain
//! continues from its last line (only the tail is read); a file whose last line is
//! incomplete or broken is refused, naming `mcp-kernel audit verify`.
//!
//! Not covered: lines are written with `write(2)`, not `fsync`ed, so an operating-system
//! crash can lose the last batch; one file must have one writer (two servers appending to
//! the same file break its chain).

mod line;
mod report;
mod verify;

pub use report::{AuditReport, AuditReportError, TenantReport, ToolUse, audit_report};
pub use verify::{AuditVerdict, audit_verify};

pub(crate) use line::{ExecuteRecord, ToolRecord};

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use line::{ChainEnd, Entry, Line};

/// Records the queue holds while the writer is busy; more are dropped (and counted).
pub(crate) const AUDIT_QUEUE_RECORDS: usize = 4096;
/// Records the writer appends with one write.
pub(crate) const MAX_BATCH_RECORDS: usize = 256;

/// `mcpk_audit_records_total`: execute records written to the audit log.
pub(crate) const RECORDS_TOTAL: &str = "mcpk_audit_records_total";
/// `mcpk_audit_dropped_total`: execute records that never reached the log (queue full, or a
/// failed write).
pub(crate) const DROPPED_TOTAL: &str = "mcpk_audit_dropped_total";
/// `mcpk_audit_write_errors_total`: failed writes to the audit log.
pub(crate) const WRITE_ERRORS_TOTAL: &str = "mcpk_audit_write_errors_total";

/// The audit log could not be opened at start-up.
#[derive(Debug, thiserror::Error)]
#[error(
    "audit log {}: {reason}; check it with `mcp-kernel audit verify {}`, and move it aside to start a new chain",
    path.display(),
    path.display()
)]
pub(crate) struct AuditOpenError {
    path: PathBuf,
    reason: String,
}

/// Bytes of `status` kept (a JavaScript error's name is the code's to choose).
const MAX_STATUS_BYTES: usize = 128;

impl ExecuteRecord {
    /// The record of one call of `code` in `session` by `tenant` that took `duration`:
    /// `result` is its answer, or the name of the error it failed with.
    pub(crate) fn of_call(
        tenant: &str,
        session: Option<&str>,
        code: Option<&str>,
        result: Result<&mcpk_session::Answer, &str>,
        duration: std::time::Duration,
    ) -> Self {
        let (status, result_bytes, cache, calls) = match result {
            Ok(answer) => match &answer.outcome.result {
                Ok(value) => (
                    "ok",
                    value.json.len(),
                    answer.cached,
                    Some(&answer.tool_calls),
                ),
                Err(error) => (
                    error.kind.name(),
                    0,
                    answer.cached,
                    Some(&answer.tool_calls),
                ),
            },
            Err(name) => (name, 0, None, None),
        };
        let mut status = status.to_owned();
        if status.len() > MAX_STATUS_BYTES {
            let mut end = MAX_STATUS_BYTES;
            while !status.is_char_boundary(end) {
                end -= 1;
            }
            status.truncate(end);
        }
        Self {
            tenant: tenant.to_owned(),
            session: session.map(str::to_owned),
            code_sha256: code.map(|code| mcpk_session::sha256_hex(code.as_bytes())),
            tools: calls
                .map(|calls| {
                    calls
                        .listed
                        .iter()
                        .map(|call| ToolRecord {
                            server: call.server.clone(),
                            tool: call.tool.clone(),
                            args_sha256: call.args_sha256.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            tools_unlisted: calls.map_or(0, |calls| calls.unlisted),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            status,
            result_bytes: result_bytes as u64,
            cache: cache.map(str::to_owned),
        }
    }
}

/// The handle calls record through. Cheap to clone; [`Audit::disabled`] records nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Audit {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    queue: mpsc::Sender<(String, ExecuteRecord)>,
    /// Records dropped because the queue was full, not yet written as a `dropped` line.
    dropped: AtomicU64,
    /// The last write error, until a write succeeds.
    last_error: Mutex<Option<String>>,
    stop: CancellationToken,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Audit {
    /// Records nothing (no `--audit-log`).
    pub(crate) fn disabled() -> Self {
        Self::default()
    }

    /// Opens (or creates, mode 0600) the log at `path`, continues its chain, and starts the
    /// writer task. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// The file cannot be read or opened for appending, or its last line is incomplete or
    /// not a valid audit line.
    pub(crate) fn open(path: &Path) -> Result<Self, AuditOpenError> {
        let failed = |reason: String| AuditOpenError {
            path: path.to_owned(),
            reason,
        };
        let end = line::chain_end(path).map_err(failed)?;
        let file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| failed(format!("cannot open it for appending: {e}")))?
        };
        let good_bytes = file
            .metadata()
            .map_err(|e| failed(format!("cannot read it: {e}")))?
            .len();
        let (queue, receiver) = mpsc::channel(AUDIT_QUEUE_RECORDS);
        let shared = Arc::new(Shared {
            queue,
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
            stop: CancellationToken::new(),
            writer: Mutex::new(None),
        });
        let writer = Writer {
            file: Some(file),
            end,
            good_bytes,
            repair: false,
            lost: 0,
        };
        let task = tokio::spawn(writer.run(receiver, shared.clone()));
        *shared.writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        tracing::info!(path = %path.display(), "audit log open");
        Ok(Self {
            shared: Some(shared),
        })
    }

    /// Queues `record`, stamped with the time now, for the log; never waits. When the queue
    /// is full the record is dropped and counted, and the log gets a `dropped` line.
    pub(crate) fn record(&self, record: ExecuteRecord) {
        let Some(shared) = &self.shared else {
            return;
        };
        if shared.queue.try_send((line::now(), record)).is_err() {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(DROPPED_TOTAL).increment(1);
        }
    }

    /// Whether the log is being written: `Err` with the last write error until a write
    /// succeeds again, or when the writer has stopped. Always `Ok` when disabled.
    ///
    /// # Errors
    /// The reason, naming the audit log.
    pub(crate) fn health(&self) -> Result<(), String> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        if let Some(error) = &*shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(format!("the audit log cannot be written: {error}"));
        }
        let stopped = shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished);
        if stopped {
            return Err("the audit log's writer has stopped".to_owned());
        }
        Ok(())
    }

    /// Writes everything queued (and a `dropped` line if records were dropped), then stops
    /// the writer. Records queued after this are dropped.
    pub(crate) async fn close(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        shared.stop.cancel();
        let task = shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the audit log's writer failed");
        }
    }
}

/// The writer task's state: the file and the chain's end as written.
struct Writer {
    /// `None` only while a write runs on the blocking pool (or after it panicked).
    file: Option<std::fs::File>,
    end: ChainEnd,
    /// The file's length after its last complete line.
    good_bytes: u64,
    /// A write failed: cut the file back to `good_bytes` before the next one.
    repair: bool,
    /// Records of failed writes, not yet written as a `dropped` line.
    lost: u64,
}

impl Writer {
    async fn run(
        mut self,
        mut receiver: mpsc::Receiver<(String, ExecuteRecord)>,
        shared: Arc<Shared>,
    ) {
        let mut batch = Vec::with_capacity(MAX_BATCH_RECORDS);
        loop {
            let stopping = tokio::select! {
                biased;
                received = receiver.recv_many(&mut batch, MAX_BATCH_RECORDS) => received == 0,
                () = shared.stop.cancelled() => true,
            };
            if stopping {
                receiver.close();
                while let Ok(record) = receiver.try_recv() {
                    batch.push(record);
                }
            }
            // In chunks, so one write stays bounded.
            while !batch.is_empty() || (stopping && self.pending(&shared) > 0) {
                let chunk: Vec<_> = batch.drain(..batch.len().min(MAX_BATCH_RECORDS)).collect();
                self = self.write(chunk, &shared).await;
                if stopping && self.repair {
                    break;
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Records known not to be in the file.
    fn pending(&self, shared: &Shared) -> u64 {
        self.lost + shared.dropped.load(Ordering::Relaxed)
    }

    /// Seals `records` onto the chain (after a `dropped` line when records were lost) and
    /// appends them with one write.
    async fn write(mut self, records: Vec<(String, ExecuteRecord)>, shared: &Shared) -> Self {
        let dropped = shared.dropped.swap(0, Ordering::Relaxed) + std::mem::take(&mut self.lost);
        let written = u64::try_from(records.len()).unwrap_or(u64::MAX);
        let mut bytes = Vec::new();
        let mut end = self.end.clone();
        let mut entries: Vec<(String, Entry)> = Vec::with_capacity(records.len() + 1);
        if dropped > 0 {
            entries.push((line::now(), Entry::Dropped { dropped }));
        }
        entries.extend(records.into_iter().map(|(t, r)| (t, Entry::Execute(r))));
        for (time, entry) in entries {
            let seq = end.seq + 1;
            let (sealed, hash) = line::seal(&Line {
                seq,
                time,
                entry,
                prev: end.hash,
            });
            bytes.extend_from_slice(&sealed);
            bytes.push(b'\n');
            end = ChainEnd { seq, hash };
        }
        let Some(mut file) = self.file.take() else {
            // The file was lost with a panicked write; nothing can be written any more.
            self.repair = true;
            self.lost += dropped + written;
            return self;
        };
        let (repair, good_bytes) = (self.repair, self.good_bytes);
        let done = tokio::task::spawn_blocking(move || {
            let result = (|| {
                if repair {
                    file.set_len(good_bytes)?;
                }
                file.write_all(&bytes)?;
                file.flush()?;
                Ok::<_, std::io::Error>(bytes.len() as u64)
            })();
            (file, result)
        })
        .await;
        match done {
            Ok((file, Ok(appended))) => {
                self.file = Some(file);
                self.end = end;
                self.good_bytes += appended;
                self.repair = false;
                metrics::counter!(RECORDS_TOTAL).increment(written);
                *shared
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
            }
            Ok((file, Err(error))) => {
                self.file = Some(file);
                self.failed(shared, dropped, written, &error.to_string());
            }
            Err(error) => self.failed(shared, dropped, written, &error.to_string()),
        }
        self
    }

    /// A write of `written` records (after a `dropped` line for `dropped`) failed: none of
    /// them count as written, the chain stays where it was.
    fn failed(&mut self, shared: &Shared, dropped: u64, written: u64, error: &str) {
        tracing::warn!(%error, records = written, "writing the audit log failed");
        self.repair = true;
        self.lost += dropped + written;
        metrics::counter!(WRITE_ERRORS_TOTAL).increment(1);
        metrics::counter!(DROPPED_TOTAL).increment(written);
        *shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tenant: &str) -> ExecuteRecord {
        ExecuteRecord {
            tenant: tenant.to_owned(),
            session: Some("default".to_owned()),
            code_sha256: Some(mcpk_session::sha256_hex(b"1")),
            tools: Vec::new(),
            tools_unlisted: 0,
            duration_ms: 1,
            status: "ok".to_owned(),
            result_bytes: 1,
            cache: None,
        }
    }

    #[tokio::test]
    async fn dropped_records_are_logged_as_one_line_in_the_chain_before_the_next_record() {
        let dir = std::env::temp_dir().join(format!("mcpk-audit-drop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let audit = Audit::open(&path).unwrap();
        // As if the queue had been full for three records.
        let shared = audit.shared.clone().unwrap();
        shared.dropped.store(3, Ordering::Relaxed);
        audit.record(record("t"));
        audit.close().await;
        assert_eq!(
            audit.health(),
            Err("the audit log's writer has stopped".to_owned())
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Line> = text
            .lines()
            .map(|l| line::unseal(l.as_bytes()).unwrap().0)
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0].entry, Entry::Dropped { dropped: 3 });
        assert_eq!(lines[1].entry, Entry::Execute(record("t")));
        assert!(matches!(
            verify::audit_verify(&path).unwrap(),
            AuditVerdict::Intact { lines: 2, .. }
        ));
        // A record after close is dropped, not written.
        audit.record(record("late"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_failed_write_is_kept_for_health_and_crashes_nothing() {
        // Every write to /dev/full fails (ENOSPC, or EINVAL when appending), like a full disk.
        let audit = Audit::open(Path::new("/dev/full")).unwrap();
        assert_eq!(audit.health(), Ok(()));
        audit.record(record("t"));
        audit.close().await;
        let error = audit.health().unwrap_err();
        assert!(
            error.starts_with("the audit log cannot be written: "),
            "{error}"
        );
        assert_eq!(Audit::disabled().health(), Ok(()));
    }
}
