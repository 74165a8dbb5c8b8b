//! The worker's job queue: a small [`JobExecutor`] that never spins and never blocks.
//!
//! Boa's stock `SimpleJobExecutor` busy-polls its futures (it spins a core while a host call is
//! pending) and its blocking `run_jobs` hangs on a host future that only the supervisor can
//! complete. This executor only *stores* jobs; [`Engine::run_to_completion`] drains them on
//! the worker's current-thread tokio runtime and sleeps in `select!` while host calls are in
//! flight.
//!
//! Ordering follows Node: after each macrotask-like step (script evaluation, a host reply), the
//! whole microtask queue (promise jobs) is drained before anything else runs, including
//! microtasks queued by microtasks.
//!
//! [`Engine::run_to_completion`]: super::engine::Engine::run_to_completion

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use boa_engine::job::{GenericJob, Job, JobExecutor, NativeAsyncJob, PromiseJob};
use boa_engine::{Context, JsResult};

/// FIFO queues of the jobs Boa enqueues. Timer jobs are not queued: the kernel exposes no
/// timer API that creates them, and FinalizationRegistry cleanup callbacks are never run.
#[derive(Default)]
pub(crate) struct Executor {
    promise_jobs: RefCell<VecDeque<PromiseJob>>,
    generic_jobs: RefCell<VecDeque<GenericJob>>,
    async_jobs: RefCell<VecDeque<NativeAsyncJob>>,
}

impl Executor {
    /// Runs promise and generic jobs until both queues are empty, including the jobs they
    /// enqueue. The queue borrow is released before each job runs, since jobs enqueue jobs.
    pub(crate) fn drain_microtasks(&self, context: &mut Context) -> JsResult<()> {
        loop {
            let promise_job = self.promise_jobs.borrow_mut().pop_front();
            if let Some(job) = promise_job {
                job.call(context)?;
                continue;
            }
            let generic_job = self.generic_jobs.borrow_mut().pop_front();
            match generic_job {
                Some(job) => {
                    job.call(context)?;
                }
                None => return Ok(()),
            }
        }
    }

    /// Takes the async jobs (host calls) enqueued since the last call.
    pub(crate) fn take_async_jobs(&self) -> VecDeque<NativeAsyncJob> {
        std::mem::take(&mut *self.async_jobs.borrow_mut())
    }

    /// Whether microtasks are waiting.
    pub(crate) fn has_microtasks(&self) -> bool {
        !self.promise_jobs.borrow().is_empty() || !self.generic_jobs.borrow().is_empty()
    }

    /// Drops every queued job: used when a call fails, so nothing of it runs in the next call.
    pub(crate) fn clear(&self) {
        self.promise_jobs.borrow_mut().clear();
        self.generic_jobs.borrow_mut().clear();
        self.async_jobs.borrow_mut().clear();
    }
}

impl JobExecutor for Executor {
    fn enqueue_job(self: Rc<Self>, job: Job, _context: &mut Context) {
        match job {
            Job::PromiseJob(job) => self.promise_jobs.borrow_mut().push_back(job),
            Job::GenericJob(job) => self.generic_jobs.borrow_mut().push_back(job),
            Job::AsyncJob(job) => self.async_jobs.borrow_mut().push_back(job),
            // No API of the kernel creates timer jobs, and cleanup callbacks of a
            // FinalizationRegistry are optional per ECMA-262 §9.13 (HostEnqueueFinalizationRegistryCleanupJob).
            _ => {}
        }
    }

    /// Synchronous drain, for engine paths that call `Context::run_jobs`; host calls stay
    /// queued for the async driver.
    fn run_jobs(self: Rc<Self>, context: &mut Context) -> JsResult<()> {
        self.drain_microtasks(context)
    }
}
