//! Server configuration: plain data with secure defaults, validated in one place.
//!
//! One source of defaults: the kernel's limits come from [`KernelConfig::new`], the session
//! limits and TTLs from [`SessionConfig::default`], the snapshot store's from
//! [`mcpk_session::StoreConfig::default`], the upstream timeouts from
//! [`UpstreamLimits::default`](crate::UpstreamLimits), and the rest is set here;
//! [`ServeConfig::default`] gathers them, and the command line's defaults are read from it.
//! [`ServeConfig::validate`] checks every value and the relations between them, so a limit that
//! cannot work stops the server at start-up instead of failing a call later.

use std::path::PathBuf;
use std::time::Duration;

use mcpk_session::{KernelConfig, SessionConfig, WorkerFault};

/// The largest accepted `max_host_calls_in_flight`.
pub(crate) const MAX_HOST_CALLS_IN_FLIGHT_CEILING: usize = 65_536;

/// Everything `mcp-kernel serve` needs. Every limit carries its unit in its name or type.
///
/// The defaults are the documented limits of DESIGN.md.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The executable started as `<worker_exe> worker` for each kernel worker process.
    /// Defaults to the running executable.
    pub worker_exe: PathBuf,
    /// How many idle workers the pool keeps started, so a new session does not wait for a
    /// process to start. Does not limit how many sessions may be live at once.
    pub warm_workers: usize,
    /// Address-space limit of each worker process, in MiB. It bounds the engine's heap and
    /// everything else the worker maps; it does not bound the supervisor's memory.
    pub memory_mib: u64,
    /// The wall-clock limit of a call that sets no `timeout_ms`.
    pub default_timeout: Duration,
    /// The largest `timeout_ms` a call may ask for.
    pub max_timeout: Duration,
    /// A result's JSON text longer than this is cut to this many bytes, with a note telling the
    /// agent to filter in code. Does not bound logs or state.
    pub max_result_bytes: usize,
    /// Console output captured per call, in bytes; output past it is dropped with a visible
    /// marker.
    pub max_log_bytes: usize,
    /// The largest `mcp.state`, as JSON bytes, that a call may commit.
    pub max_state_bytes: usize,
    /// Live sessions per server process; each holds one worker process (about 4 MiB of
    /// private memory, measured by the `kernel` benchmark). At the limit the least recently
    /// used idle session hibernates; a call fails with `SessionLimitError` naming the limit
    /// only when every live session is running a call.
    pub max_live_sessions: usize,
    /// A live session idle this long hibernates: its worker is released, its snapshot kept.
    pub idle_ttl: Duration,
    /// A hibernated session's snapshot is deleted this long after its last use; a call naming
    /// it then gets `SessionExpired`.
    pub retention_ttl: Duration,
    /// The tenant this server's sessions and skills belong to (over stdio, one per process).
    pub tenant: String,
    /// Redis for snapshots, skills and leases (`redis://host:port/db`); `None` keeps them in
    /// this process's memory (the embedded default: nothing survives a restart).
    pub redis_url: Option<String>,
    /// Prepended to every Redis key (`<prefix>mcpk:v1:…`), so deployments or tests can share
    /// one Redis.
    pub redis_key_prefix: String,
    /// The result cache's namespace version, part of every cache key (default 0). Changing it
    /// (an admin bump, on every replica) makes everything cached under the old one
    /// unreachable at once, in both tiers, with no scan: Redis lets the old keys expire.
    pub cache_namespace: u64,
    /// The largest snapshot state (as JSON bytes) the store accepts; `None` (the default) is
    /// `max_state_bytes`. A larger one is refused with `StateLimitError` naming both sizes;
    /// it matters when replicas sharing one Redis run with different state limits.
    pub max_snapshot_bytes: Option<usize>,
    /// Upstream MCP servers, in Claude Desktop's `{"mcpServers": {...}}` format; `None` runs
    /// the embedded default with no upstream.
    pub upstream_config: Option<PathBuf>,
    /// Connect and call timeouts of the upstream servers.
    pub upstream_limits: crate::upstream::UpstreamLimits,
    /// Host calls of one `execute` call that may wait for their answers at once (default
    /// 256, at most 65,536). Later calls wait in the worker, in call order, and do not fail;
    /// a worker that sends more is stopped with an error naming the limit.
    pub max_host_calls_in_flight: usize,
    /// Where to append one hash-chained JSON line per `execute` call (see the README's
    /// "Audit log"); `None` (the default) keeps no audit log. The file is created with mode
    /// 0600; an existing file's chain is continued, and one whose last line is incomplete or
    /// broken stops the server at start-up.
    pub audit_log: Option<PathBuf>,
    /// Test-only fault injected into the workers (hidden `--worker-fault`); `None` in
    /// production.
    pub worker_fault: Option<WorkerFault>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let kernel = KernelConfig::new(PathBuf::from("mcp-kernel"));
        let session = SessionConfig::default();
        Self {
            warm_workers: kernel.warm_workers,
            memory_mib: kernel.memory_mib,
            default_timeout: Duration::from_millis(5_000),
            max_timeout: Duration::from_millis(60_000),
            max_result_bytes: kernel.max_result_bytes,
            max_log_bytes: kernel.max_log_bytes,
            max_state_bytes: kernel.max_state_bytes,
            max_live_sessions: session.max_live_sessions,
            idle_ttl: session.idle_ttl,
            retention_ttl: session.retention_ttl,
            tenant: "local".to_owned(),
            redis_url: None,
            redis_key_prefix: mcpk_session::StoreConfig::default().key_prefix,
            cache_namespace: mcpk_session::CacheConfig::default().namespace_version,
            max_snapshot_bytes: None,
            upstream_config: None,
            upstream_limits: crate::upstream::UpstreamLimits::default(),
            max_host_calls_in_flight: kernel.max_host_calls_in_flight,
            audit_log: None,
            worker_fault: kernel.worker_fault,
            worker_exe: kernel.worker_exe,
        }
    }
}

/// A [`ServeConfig`] that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit that must be positive is zero.
    #[error("{name} must be greater than zero")]
    Zero {
        /// The setting's name, as on the command line.
        name: &'static str,
    },
    /// A limit is above the largest value it accepts.
    #[error("{name}={value} is above its ceiling of {max}")]
    TooLarge {
        /// The setting's name, as on the command line.
        name: &'static str,
        /// The value given.
        value: usize,
        /// The largest accepted value.
        max: usize,
    },
    /// The default timeout is above the maximum timeout.
    #[error("the default timeout ({default:?}) is longer than the maximum timeout ({max:?})")]
    DefaultAboveMax {
        /// The default timeout.
        default: Duration,
        /// The maximum timeout.
        max: Duration,
    },
    /// A commit at `max_state_bytes` (with a result at `max_result_bytes`) would not fit in one
    /// worker protocol frame once JSON-escaped.
    #[error(
        "max-state-bytes ({max_state_bytes}) does not fit in a worker protocol frame: with \
         max-result-bytes ({max_result_bytes}) a commit can take {frame_bytes} bytes \
         JSON-escaped, over the protocol's frame limit MAX_FRAME_BYTES ({max_frame_bytes} \
         bytes); the largest max-state-bytes that fits is {largest_state_bytes}"
    )]
    StateAboveFrame {
        /// The configured largest state, in JSON bytes.
        max_state_bytes: usize,
        /// The configured largest result, in JSON bytes.
        max_result_bytes: usize,
        /// The largest frame those limits can make, in bytes.
        frame_bytes: usize,
        /// The protocol's frame limit, in bytes.
        max_frame_bytes: usize,
        /// The largest `max_state_bytes` that fits with this `max_result_bytes`.
        largest_state_bytes: usize,
    },
    /// A snapshot at the state limit would not fit under the snapshot cap.
    #[error(
        "max-snapshot-bytes ({max_snapshot_bytes}) is below max-state-bytes ({max_state_bytes}): a session at its state limit could not be saved"
    )]
    SnapshotBelowState {
        /// The configured snapshot cap, in bytes.
        max_snapshot_bytes: usize,
        /// The configured state limit, in JSON bytes.
        max_state_bytes: usize,
    },
    /// The tenant name is not 1 to 64 characters from `A-Z a-z 0-9 _ . -`.
    #[error("tenant `{tenant}` must be 1 to 64 characters from A-Z a-z 0-9 _ . -")]
    Tenant {
        /// The tenant given (cut to 70 characters).
        tenant: String,
    },
}

impl ServeConfig {
    /// Checks that the configuration is usable.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first setting that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("memory-mib", self.memory_mib == 0),
            ("default-timeout-ms", self.default_timeout_ms() == 0),
            ("max-timeout-ms", self.max_timeout_ms() == 0),
            ("max-result-bytes", self.max_result_bytes == 0),
            ("max-state-bytes", self.max_state_bytes == 0),
            ("max-live-sessions", self.max_live_sessions == 0),
            ("idle-ttl-secs", self.idle_ttl.is_zero()),
            ("retention-ttl-secs", self.retention_ttl.is_zero()),
            ("max-snapshot-bytes", self.max_snapshot_bytes == Some(0)),
            (
                "upstream-connect-timeout-ms",
                self.upstream_limits.connect_timeout.is_zero(),
            ),
            (
                "upstream-call-timeout-ms",
                self.upstream_limits.call_timeout.is_zero(),
            ),
            (
                "max-host-calls-in-flight",
                self.max_host_calls_in_flight == 0,
            ),
        ];
        if let Some((name, _)) = positive.into_iter().find(|(_, zero)| *zero) {
            return Err(ConfigError::Zero { name });
        }
        if self.max_host_calls_in_flight > MAX_HOST_CALLS_IN_FLIGHT_CEILING {
            return Err(ConfigError::TooLarge {
                name: "max-host-calls-in-flight",
                value: self.max_host_calls_in_flight,
                max: MAX_HOST_CALLS_IN_FLIGHT_CEILING,
            });
        }
        if self.default_timeout > self.max_timeout {
            return Err(ConfigError::DefaultAboveMax {
                default: self.default_timeout,
                max: self.max_timeout,
            });
        }
        if mcpk_session::SessionKey::named(&self.tenant, "x").is_err() {
            return Err(ConfigError::Tenant {
                tenant: self.tenant.chars().take(70).collect(),
            });
        }
        let frame_bytes = self.kernel_config().worst_case_frame_bytes();
        if frame_bytes > mcpk_session::MAX_FRAME_BYTES {
            let excess = frame_bytes - mcpk_session::MAX_FRAME_BYTES;
            return Err(ConfigError::StateAboveFrame {
                max_state_bytes: self.max_state_bytes,
                max_result_bytes: self.max_result_bytes,
                frame_bytes,
                max_frame_bytes: mcpk_session::MAX_FRAME_BYTES,
                largest_state_bytes: self.max_state_bytes.saturating_sub(excess.div_ceil(2)),
            });
        }
        if let Some(max_snapshot_bytes) = self.max_snapshot_bytes
            && max_snapshot_bytes < self.max_state_bytes
        {
            return Err(ConfigError::SnapshotBelowState {
                max_snapshot_bytes,
                max_state_bytes: self.max_state_bytes,
            });
        }
        Ok(())
    }

    /// [`Self::default_timeout`] in whole milliseconds.
    pub(crate) fn default_timeout_ms(&self) -> u64 {
        u64::try_from(self.default_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// [`Self::max_timeout`] in whole milliseconds.
    pub(crate) fn max_timeout_ms(&self) -> u64 {
        u64::try_from(self.max_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// The part of the configuration the session manager needs.
    pub(crate) fn session_config(&self) -> SessionConfig {
        SessionConfig {
            max_live_sessions: self.max_live_sessions,
            idle_ttl: self.idle_ttl,
            retention_ttl: self.retention_ttl,
            ..SessionConfig::default()
        }
    }

    /// The part of the configuration the snapshot store needs.
    pub(crate) fn store_config(&self) -> mcpk_session::StoreConfig {
        mcpk_session::StoreConfig {
            key_prefix: self.redis_key_prefix.clone(),
            retention: self.retention_ttl,
            max_snapshot_bytes: self.max_snapshot_bytes.unwrap_or(self.max_state_bytes),
            ..mcpk_session::StoreConfig::default()
        }
    }

    /// The part of the configuration the kernel's worker pool needs.
    pub(crate) fn kernel_config(&self) -> KernelConfig {
        KernelConfig {
            worker_exe: self.worker_exe.clone(),
            warm_workers: self.warm_workers,
            memory_mib: self.memory_mib,
            max_log_bytes: self.max_log_bytes,
            max_state_bytes: self.max_state_bytes,
            max_result_bytes: self.max_result_bytes,
            max_host_calls_in_flight: self.max_host_calls_in_flight,
            worker_fault: self.worker_fault,
            ..KernelConfig::new(self.worker_exe.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_limits_and_valid() {
        let config = ServeConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.default_timeout_ms(), 5_000);
        assert_eq!(config.max_timeout_ms(), 60_000);
        assert_eq!(config.max_result_bytes, 32_768);
        assert_eq!(config.max_log_bytes, 16_384);
        assert_eq!(config.max_state_bytes, 8_388_608);
        assert_eq!(config.max_host_calls_in_flight, 256);
    }

    #[test]
    fn max_host_calls_in_flight_is_checked_at_both_ends() {
        let at = |max_host_calls_in_flight| ServeConfig {
            max_host_calls_in_flight,
            ..ServeConfig::default()
        };
        assert_eq!(
            at(0).validate(),
            Err(ConfigError::Zero {
                name: "max-host-calls-in-flight"
            })
        );
        assert_eq!(at(1).validate(), Ok(()));
        assert_eq!(at(MAX_HOST_CALLS_IN_FLIGHT_CEILING).validate(), Ok(()));
        let error = at(MAX_HOST_CALLS_IN_FLIGHT_CEILING + 1)
            .validate()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "max-host-calls-in-flight=65537 is above its ceiling of 65536"
        );
    }

    #[test]
    fn defaults_come_from_the_crates_that_enforce_them() {
        let config = ServeConfig::default();
        let kernel = KernelConfig::new(PathBuf::from("mcp-kernel"));
        assert_eq!(config.warm_workers, kernel.warm_workers);
        assert_eq!(config.memory_mib, kernel.memory_mib);
        assert_eq!(config.max_result_bytes, kernel.max_result_bytes);
        assert_eq!(config.max_log_bytes, kernel.max_log_bytes);
        assert_eq!(config.max_state_bytes, kernel.max_state_bytes);
        assert_eq!(
            config.max_live_sessions,
            SessionConfig::default().max_live_sessions
        );
        let kernel = config.kernel_config();
        assert_eq!(
            kernel.max_json_depth,
            KernelConfig::new(PathBuf::new()).max_json_depth
        );
    }

    #[test]
    fn a_snapshot_cap_below_the_state_limit_and_a_bad_tenant_are_refused() {
        let config = ServeConfig {
            max_snapshot_bytes: Some((8 << 20) - 1),
            ..ServeConfig::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.contains("max-snapshot-bytes (8388607)")
                && message.contains("max-state-bytes (8388608)"),
            "{message}"
        );
        let at_limit = ServeConfig {
            max_snapshot_bytes: Some(8 << 20),
            ..ServeConfig::default()
        };
        assert_eq!(at_limit.validate(), Ok(()));
        for tenant in ["", "a:b", "x y", &"t".repeat(65)] {
            let config = ServeConfig {
                tenant: tenant.to_owned(),
                ..ServeConfig::default()
            };
            assert!(
                matches!(config.validate(), Err(ConfigError::Tenant { .. })),
                "{tenant:?}"
            );
        }
        let longest = ServeConfig {
            tenant: "t".repeat(64),
            ..ServeConfig::default()
        };
        assert_eq!(longest.validate(), Ok(()));
    }

    #[test]
    fn a_state_limit_that_cannot_fit_in_a_frame_is_refused_naming_both_limits() {
        let fits = |max_state_bytes| ServeConfig {
            max_state_bytes,
            ..ServeConfig::default()
        };
        let Err(error) = fits(40 << 20).validate() else {
            panic!("40 MiB of state cannot fit in a 64 MiB frame JSON-escaped");
        };
        let message = error.to_string();
        assert!(message.contains("max-state-bytes (41943040)"), "{message}");
        assert!(
            message.contains("MAX_FRAME_BYTES (67108864 bytes)"),
            "{message}"
        );
        let ConfigError::StateAboveFrame {
            largest_state_bytes,
            ..
        } = error
        else {
            panic!("{error:?}")
        };
        // The limit is exact: the largest fitting value passes, one byte more does not.
        assert_eq!(fits(largest_state_bytes).validate(), Ok(()));
        assert!(matches!(
            fits(largest_state_bytes + 1).validate(),
            Err(ConfigError::StateAboveFrame { .. })
        ));
    }

    #[test]
    fn unusable_configs_are_rejected() {
        let config = ServeConfig {
            default_timeout: Duration::from_secs(61),
            ..ServeConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::DefaultAboveMax { .. })
        ));
        let config = ServeConfig {
            memory_mib: 0,
            ..ServeConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::Zero { name: "memory-mib" })
        );
    }
}
