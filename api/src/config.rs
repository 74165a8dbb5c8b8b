//! Server configuration: plain data with secure defaults, validated in one place.
//!
//! One source of defaults: the kernel's limits come from [`KernelConfig::new`], the session
//! limit from [`mcpk_session::SessionConfig::default`], the upstream timeouts from
//! [`UpstreamLimits::default`](crate::UpstreamLimits), and the rest is set here;
//! [`ServeConfig::default`] gathers them, and the command line's defaults are read from it.
//! [`ServeConfig::validate`] checks every value and the relations between them, so a limit that
//! cannot work stops the server at start-up instead of failing a call later.

use std::path::PathBuf;
use std::time::Duration;

use mcpk_kernel::{KernelConfig, WorkerFault};

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
    /// Sessions open at once per server process; each live session holds one worker process
    /// (about 4 MiB of private memory, measured by the benchmark). A call that would open one
    /// more fails with a JSON-RPC internal error naming the limit.
    pub max_sessions: usize,
    /// Upstream MCP servers, in Claude Desktop's `{"mcpServers": {...}}` format; `None` runs
    /// the embedded default with no upstream.
    pub upstream_config: Option<PathBuf>,
    /// Connect and call timeouts of the upstream servers.
    pub upstream_limits: crate::upstream::UpstreamLimits,
    /// Host calls of one `execute` call that may wait for their answers at once (default
    /// 256, at most 65,536). Later calls wait in the worker, in call order, and do not fail;
    /// a worker that sends more is stopped with an error naming the limit.
    pub max_host_calls_in_flight: usize,
    /// Test-only fault injected into the workers (hidden `--worker-fault`); `None` in
    /// production.
    pub worker_fault: Option<WorkerFault>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let kernel = KernelConfig::new(PathBuf::from("mcp-kernel"));
        Self {
            warm_workers: kernel.warm_workers,
            memory_mib: kernel.memory_mib,
            default_timeout: Duration::from_millis(5_000),
            max_timeout: Duration::from_millis(60_000),
            max_result_bytes: kernel.max_result_bytes,
            max_log_bytes: kernel.max_log_bytes,
            max_state_bytes: kernel.max_state_bytes,
            max_sessions: mcpk_session::SessionConfig::default().max_sessions,
            upstream_config: None,
            upstream_limits: crate::upstream::UpstreamLimits::default(),
            max_host_calls_in_flight: kernel.max_host_calls_in_flight,
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
            ("max-sessions", self.max_sessions == 0),
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
        let frame_bytes = self.kernel_config().worst_case_frame_bytes();
        if frame_bytes > mcpk_kernel::MAX_FRAME_BYTES {
            let excess = frame_bytes - mcpk_kernel::MAX_FRAME_BYTES;
            return Err(ConfigError::StateAboveFrame {
                max_state_bytes: self.max_state_bytes,
                max_result_bytes: self.max_result_bytes,
                frame_bytes,
                max_frame_bytes: mcpk_kernel::MAX_FRAME_BYTES,
                largest_state_bytes: self.max_state_bytes.saturating_sub(excess.div_ceil(2)),
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
    pub(crate) fn session_config(&self) -> mcpk_session::SessionConfig {
        mcpk_session::SessionConfig {
            max_sessions: self.max_sessions,
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
            config.max_sessions,
            mcpk_session::SessionConfig::default().max_sessions
        );
        let kernel = config.kernel_config();
        assert_eq!(
            kernel.max_json_depth,
            KernelConfig::new(PathBuf::new()).max_json_depth
        );
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
