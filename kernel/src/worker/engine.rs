//! One Boa `Context` and the JavaScript contract around it: code shape, transactional
//! `mcp.state`, console capture, host calls and result serialisation.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use boa_engine::builtins::promise::{OperationType, Promise, PromiseState};
use boa_engine::object::builtins::{JsArray, JsFunction, JsPromise};
use boa_engine::property::Attribute;
use boa_engine::{
    Context, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue, NativeFunction, Source,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Semaphore, oneshot};

use super::executor::Executor;
use super::inbound::Inbound;
use super::{outbound, shape, skills};
use crate::outcome::{CallError, Effects, ErrorKind, LogEntry, LogLevel, MAX_EFFECTS_TOOLS};
use crate::protocol::{
    FromWorker, HostOp, MAX_HOST_MESSAGE_BYTES, SkillLibrary, ToWorker, ToolRef, WorkerLimits,
    is_skill_name,
};
use crate::state::{StateAccess, StateDelta};

const PRELUDE: &str = include_str!("prelude.js");
const ROLLED_BACK: &str = "(mcp.state was rolled back to its last committed value)";

/// Per-call bookkeeping shared with the native functions, which must be `Copy` closures and so
/// reach it through this thread-local (the worker runs one call at a time on one thread).
#[derive(Default)]
struct CallContext {
    id: Cell<u64>,
    max_log_bytes: Cell<usize>,
    log_bytes: Cell<usize>,
    log_truncated: Cell<bool>,
    /// `mcp.progress` reports sent in this call (at most [`MAX_PROGRESS_REPORTS_PER_CALL`]).
    progress_reports: Cell<usize>,
    next_host_call: Cell<u64>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Result<serde_json::Value, String>>>>,
    /// One permit per host call that may be in flight (`max_host_calls_in_flight`); a fresh
    /// semaphore per call, so nothing of an abandoned call holds a slot in the next.
    host_slots: RefCell<Option<Arc<Semaphore>>>,
    /// The host-call half of the call's [`Effects`]: upstream tools called and other host
    /// operations used, recorded as their frames are sent (see [`Tracked`]).
    tracked: RefCell<Tracked>,
}

/// The effects the worker records in [`host_call`]: every upstream tool called (deduplicated,
/// first use first, at most [`MAX_EFFECTS_TOOLS`]) and the names of the other host operations.
#[derive(Default)]
struct Tracked {
    tools: Vec<ToolRef>,
    seen: HashSet<ToolRef>,
    tools_truncated: bool,
    host_ops: Vec<String>,
}

impl Tracked {
    fn record(&mut self, op: &HostOp) {
        match op {
            HostOp::CallTool { server, tool, .. } => {
                let tool = ToolRef {
                    server: server.clone(),
                    tool: tool.clone(),
                };
                if self.seen.contains(&tool) {
                    return;
                }
                if self.tools.len() >= MAX_EFFECTS_TOOLS {
                    self.tools_truncated = true;
                    return;
                }
                self.seen.insert(tool.clone());
                self.tools.push(tool);
            }
            other => {
                let name = other.name();
                if !self.host_ops.iter().any(|n| n == name) {
                    self.host_ops.push(name.to_owned());
                }
            }
        }
    }
}

thread_local! {
    static CALL: CallContext = CallContext::default();
}

/// Why a call stopped before its promise settled normally.
enum Abort {
    /// An uncatchable engine error (runtime limit): the Context may be damaged.
    Engine(JsError),
    /// The supervisor went away or broke the protocol.
    Channel,
}

pub(crate) struct Engine {
    context: Context,
    executor: Rc<Executor>,
    hooks: Rc<SealedHooks>,
    /// The promise of the call that is running (its rejection is the call's error, not an
    /// unhandled rejection).
    call_promise: Option<JsObject>,
    /// How positions in the running call's wrapped script map to the user's code.
    positions: shape::Positions,
    limits: WorkerLimits,
    serialize: JsFunction,
    describe: JsFunction,
    restore_state: JsFunction,
    prepare_state: JsFunction,
    accept_state: JsFunction,
    discard_changes: JsFunction,
    state_access: JsFunction,
    set_library: JsFunction,
    set_servers: JsFunction,
    take_skills_used: JsFunction,
    take_effects: JsFunction,
    /// Bytes each committed top-level key adds to the state's JSON text (`key:value,`), by
    /// key as a JSON string literal; the texts themselves live in the prelude.
    committed_sizes: HashMap<String, usize>,
    /// The sum of `committed_sizes`.
    committed_sum: usize,
    /// Test fault `stop-reading-stdin`: never read stdin while a call runs.
    stop_reading_stdin: bool,
}

/// Collects the garbage of the call that just ended when the live heap grew by more than
/// [`crate::heap::COLLECT_AFTER_GROWTH_BYTES`] since the last collection. Boa's collector
/// triggers on the bytes of its object headers only, not on the element, property and map
/// storage they own, so a call that drops a 100,000-entry `Map` leaves ~12 MB it never sees:
/// measured, RSS grew by that much per call until the address-space limit (the old whole-state
/// serialiser's path maps did this on every call). A full collection after every call cost
/// more than the rest of a trivial call (`perf`: marking the realm dominated `return 1`), hence
/// the growth test. The live heap holds no `mcp.state` values between calls (they are JSON text
/// until read). The serve loop runs this after the call's answer has been written.
pub(crate) fn collect_garbage() {
    if crate::heap::grew_since_last_collection() {
        boa_engine::gc::force_collect();
        crate::heap::collected();
    }
}

/// The committed sizes after a delta: see [`Engine::check_delta`].
struct SizeUpdate {
    replace: bool,
    sizes: Vec<(String, Option<usize>)>,
    sum: usize,
}

/// Bytes of the JSON text `{k:v,...}` of a state whose entries (`k:v,` each) sum to `sum`.
fn state_bytes(sum: usize, keys: usize) -> usize {
    if keys == 0 { 2 } else { sum + 1 }
}

fn prop(obj: &JsObject, key: &str, context: &mut Context) -> JsResult<JsValue> {
    obj.get(JsString::from(key), context)
}

fn func(obj: &JsObject, key: &str, context: &mut Context) -> JsResult<JsFunction> {
    prop(obj, key, context)?
        .as_object()
        .and_then(JsFunction::from_object)
        .ok_or_else(|| {
            JsNativeError::typ()
                .with_message(format!("prelude: {key}"))
                .into()
        })
}

/// A JS string as a Rust string; lone surrogates become U+FFFD. This one rule holds for
/// everything that leaves the worker as plain text (log lines, error names, messages and
/// stacks); JSON text (results, state) keeps them as `\uXXXX` escapes instead.
fn js_to_string(value: &JsValue) -> String {
    value
        .as_string()
        .map_or_else(String::new, |s| s.to_std_string_lossy())
}

/// Splits the raw restore frame into `(key, value)` texts by their byte `sizes`.
fn split_entries<'a>(
    sizes: &[(usize, usize)],
    raw: &'a [u8],
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("entries are not UTF-8: {e}"))?;
    let mut rest = text;
    let mut entries = Vec::with_capacity(sizes.len());
    for &(key_len, value_len) in sizes {
        let piece = |rest: &'a str, len: usize| {
            (rest.len() >= len && rest.is_char_boundary(len))
                .then(|| rest.split_at(len))
                .ok_or_else(|| "entry sizes do not match the entries".to_owned())
        };
        let (key, after_key) = piece(rest, key_len)?;
        let (value, after_value) = piece(after_key, value_len)?;
        entries.push((key, value));
        rest = after_value;
    }
    if rest.is_empty() {
        Ok(entries)
    } else {
        Err("entry sizes do not match the entries".to_owned())
    }
}

fn js_string_array(items: &[&str], context: &mut Context) -> JsArray {
    JsArray::from_iter(
        items.iter().map(|s| JsValue::from(JsString::from(*s))),
        context,
    )
}

/// Host hooks for a worker under seccomp, which may open no file: local time is UTC (Boa's
/// default reads `/etc/localtime` on every local-time conversion). Dynamic `import()` is refused
/// by `IdleModuleLoader` for the same reason (the default loader opens files under the cwd).
///
/// Also the host's promise rejection tracker (ECMAScript `HostPromiseRejectionTracker`): the
/// promises rejected with no handler during the current call, so that a rejection the code
/// never awaits (`mcp.tools.call(...)` without `await`) is reported in the call's logs instead
/// of vanishing, as Node reports it on stderr.
#[derive(Default)]
struct SealedHooks {
    /// Rejected promises with no handler yet, oldest first; at most
    /// [`MAX_TRACKED_REJECTIONS`], beyond which only `untracked` counts them.
    unhandled: RefCell<Vec<JsObject<Promise>>>,
    /// Rejections with no handler that did not fit in `unhandled` during this call.
    untracked: Cell<usize>,
}

/// Unhandled rejections remembered per call, each reported by one log line; the rest are
/// counted in one closing line.
const MAX_TRACKED_REJECTIONS: usize = 32;

impl SealedHooks {
    /// The promises still rejected without a handler, and how many more there were; resets
    /// the tracker for the next call.
    fn take_unhandled(&self) -> (Vec<JsObject<Promise>>, usize) {
        (
            std::mem::take(&mut *self.unhandled.borrow_mut()),
            self.untracked.replace(0),
        )
    }
}

impl boa_engine::context::HostHooks for SealedHooks {
    fn local_timezone_offset_seconds(&self, _unix_time_seconds: i64) -> i32 {
        0
    }

    fn promise_rejection_tracker(
        &self,
        promise: &JsObject<Promise>,
        operation: OperationType,
        _context: &mut Context,
    ) {
        let mut unhandled = self.unhandled.borrow_mut();
        match operation {
            OperationType::Reject if unhandled.len() < MAX_TRACKED_REJECTIONS => {
                unhandled.push(promise.clone());
            }
            OperationType::Reject => self.untracked.set(self.untracked.get() + 1),
            OperationType::Handle => unhandled.retain(|p| !JsObject::equals(p, promise)),
        }
    }
}

impl Engine {
    /// Builds the Context and the globals agent code sees.
    pub(crate) fn new(limits: WorkerLimits, stop_reading_stdin: bool) -> JsResult<Self> {
        let executor = Rc::new(Executor::default());
        let hooks = Rc::new(SealedHooks::default());
        let mut context = Context::builder()
            .job_executor(executor.clone())
            .host_hooks(hooks.clone())
            .module_loader(Rc::new(boa_engine::module::IdleModuleLoader))
            .build()?;
        let emit = NativeFunction::from_fn_ptr(emit).to_js_function(context.realm());
        let host_call = NativeFunction::from_async_fn(host_call).to_js_function(context.realm());
        let sleep = NativeFunction::from_async_fn(sleep).to_js_function(context.realm());
        let parse = NativeFunction::from_fn_ptr(parse_json).to_js_function(context.realm());
        let is_skill_name =
            NativeFunction::from_fn_ptr(is_skill_name_fn).to_js_function(context.realm());
        let check_skill = NativeFunction::from_fn_ptr(check_skill).to_js_function(context.realm());
        let compile_skill =
            NativeFunction::from_fn_ptr(compile_skill).to_js_function(context.realm());
        let freeze_reachable =
            NativeFunction::from_fn_ptr(freeze_reachable).to_js_function(context.realm());
        register_web_globals(&mut context)?;
        let setup = context.eval(
            Source::from_bytes(PRELUDE).with_path(std::path::Path::new(shape::PRELUDE_PATH)),
        )?;
        let setup = setup
            .as_callable()
            .ok_or_else(|| JsNativeError::typ().with_message("prelude is not a function"))?;
        let api = setup.call(
            &JsValue::undefined(),
            &[
                emit.into(),
                host_call.into(),
                sleep.into(),
                parse.into(),
                is_skill_name.into(),
                check_skill.into(),
                compile_skill.into(),
                freeze_reachable.into(),
            ],
            &mut context,
        )?;
        let api = api
            .as_object()
            .ok_or_else(|| JsNativeError::typ().with_message("prelude returned no object"))?;
        // Not enumerable, like the built-ins; `lockdown` then makes every global, these
        // included, neither writable nor configurable.
        for name in [
            "mcp",
            "servers",
            "skills",
            "console",
            "ToolError",
            "setTimeout",
            "clearTimeout",
            "queueMicrotask",
            "URLSearchParams",
        ] {
            let value = prop(&api, name, &mut context)?;
            context.register_global_property(JsString::from(name), value, Attribute::empty())?;
        }
        func(&api, "lockdown", &mut context)?.call(&JsValue::undefined(), &[], &mut context)?;
        CALL.with(|c| c.max_log_bytes.set(limits.max_log_bytes));
        Ok(Self {
            serialize: func(&api, "serialize", &mut context)?,
            describe: func(&api, "describe", &mut context)?,
            restore_state: func(&api, "restoreState", &mut context)?,
            prepare_state: func(&api, "prepareState", &mut context)?,
            accept_state: func(&api, "acceptState", &mut context)?,
            discard_changes: func(&api, "discardChanges", &mut context)?,
            state_access: func(&api, "stateAccess", &mut context)?,
            set_library: func(&api, "setLibrary", &mut context)?,
            set_servers: func(&api, "setServers", &mut context)?,
            take_skills_used: func(&api, "takeSkillsUsed", &mut context)?,
            take_effects: func(&api, "takeEffects", &mut context)?,
            context,
            executor,
            hooks,
            call_promise: None,
            positions: shape::Positions::default(),
            limits,
            committed_sizes: HashMap::new(),
            committed_sum: 0,
            stop_reading_stdin,
        })
    }

    /// Replaces the committed `mcp.state` with the supervisor's copy: `(key, value)` pairs, keys
    /// as JSON string literals, values as JSON text. Nothing is parsed until code reads a key.
    /// Replaces `mcp.state` with the committed entries in `raw` (see `ToWorker::Restore`).
    pub(crate) fn restore(&mut self, sizes: &[(usize, usize)], raw: &[u8]) -> FromWorker {
        let entries = match split_entries(sizes, raw) {
            Ok(entries) => entries,
            Err(reason) => {
                return FromWorker::Failed {
                    id: 0,
                    error: CallError {
                        kind: ErrorKind::State,
                        message: format!("could not restore mcp.state: {reason}"),
                        stack: None,
                    },
                    poisoned: false,
                    skills_used: Vec::new(),
                    effects: Effects::default(),
                };
            }
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        let values: Vec<&str> = entries.iter().map(|(_, v)| *v).collect();
        let keys = js_string_array(&keys, &mut self.context);
        let values = js_string_array(&values, &mut self.context);
        let restored = self.restore_state.call(
            &JsValue::undefined(),
            &[keys.into(), values.into()],
            &mut self.context,
        );
        match restored {
            Ok(_) => {
                self.committed_sizes = entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), k.len() + v.len() + 2))
                    .collect();
                self.committed_sum = self.committed_sizes.values().sum();
                FromWorker::Restored
            }
            Err(e) => FromWorker::Failed {
                id: 0,
                error: CallError {
                    kind: ErrorKind::State,
                    message: format!("could not restore mcp.state: {e}"),
                    stack: None,
                },
                poisoned: false,
                skills_used: Vec::new(),
                effects: Effects::default(),
            },
        }
    }

    /// Replaces the skills library `skills.<name>` reads from. Skills are compiled when first
    /// used, so this costs one string per skill.
    /// Gives the prelude the server names `servers` lists during the next call. Only a
    /// JavaScript array of strings is built, which an engine limit alone could fail; then
    /// `servers` lists nothing for the call.
    fn set_servers(&mut self, names: &[String]) {
        let names = JsArray::from_iter(
            names
                .iter()
                .map(|n| JsValue::from(JsString::from(n.as_str()))),
            &mut self.context,
        );
        let _ = self
            .set_servers
            .call(&JsValue::undefined(), &[names.into()], &mut self.context);
    }

    fn set_library(&mut self, library: SkillLibrary) -> JsResult<()> {
        let (names, sources): (Vec<&str>, Vec<&str>) = library
            .skills
            .iter()
            .map(|s| (s.name.as_str(), s.source.as_str()))
            .unzip();
        let names = js_string_array(&names, &mut self.context);
        let sources = js_string_array(&sources, &mut self.context);
        self.set_library.call(
            &JsValue::undefined(),
            &[names.into(), sources.into()],
            &mut self.context,
        )?;
        Ok(())
    }

    /// The names the call looked up on `skills`, in first-use order; resets the record.
    fn take_skills_used(&mut self) -> Vec<String> {
        let used = self
            .take_skills_used
            .call(&JsValue::undefined(), &[], &mut self.context)
            .unwrap_or_default();
        string_list(&used, &mut self.context)
            .ok()
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect()
    }

    /// What the call did that a cached answer could not reproduce: the prelude's record of
    /// time, randomness and timers, and the host calls recorded in [`CallContext`]; resets
    /// both. A flag the prelude cannot report counts as set.
    fn take_effects(&mut self) -> Effects {
        let tracked = CALL.with(|c| std::mem::take(&mut *c.tracked.borrow_mut()));
        let flags = self
            .take_effects
            .call(&JsValue::undefined(), &[], &mut self.context)
            .ok()
            .and_then(|v| v.as_object());
        let mut flag = |i: u32| {
            flags
                .as_ref()
                .is_none_or(|f| f.get(i, &mut self.context).is_ok_and(|v| v.to_boolean()))
        };
        let (time, random, timers, listed_servers) = (flag(0), flag(1), flag(2), flag(3));
        let mut host_ops = tracked.host_ops;
        // Listing `servers` read the catalogue, as `mcp.tools.list()` does.
        if listed_servers && !host_ops.iter().any(|op| op == "list_tools") {
            host_ops.push("list_tools".to_owned());
        }
        Effects {
            time,
            random,
            timers,
            tools: tracked.tools,
            tools_truncated: tracked.tools_truncated,
            host_ops,
        }
    }

    /// Runs one call to completion and returns its `Done` or `Failed` frame. `skills`, when
    /// set, first replaces the skills library. `inbound` carries host replies while the call
    /// waits on them.
    pub(crate) async fn execute(
        &mut self,
        id: u64,
        code: &str,
        skills: Option<SkillLibrary>,
        servers: &[String],
        inbound: &mut Inbound,
    ) -> Option<FromWorker> {
        let slots = Arc::new(Semaphore::new(self.limits.max_host_calls_in_flight));
        CALL.with(|c| {
            c.id.set(id);
            c.log_bytes.set(0);
            c.log_truncated.set(false);
            c.progress_reports.set(0);
            *c.host_slots.borrow_mut() = Some(slots);
            *c.tracked.borrow_mut() = Tracked::default();
        });
        if let Some(library) = skills
            && let Err(e) = self.set_library(library)
        {
            // Only an engine limit makes this plain loop over two arrays fail; the worker's
            // library is then unknown, so it is replaced.
            let message = format!("the skills library could not be loaded: {e}");
            return Some(self.fail(id, ErrorKind::Internal, message, None, true));
        }
        self.set_servers(servers);
        let outcome = self.run(code, inbound).await;
        // Host calls still in flight belong to this call only; drop them.
        CALL.with(|c| c.pending.borrow_mut().clear());
        if !matches!(outcome, Err(RunError::Abort(Abort::Channel))) {
            self.report_unhandled_rejections();
        }
        let reply = match outcome {
            Ok(PromiseState::Fulfilled(value)) => self.commit(id, &value),
            Ok(PromiseState::Rejected(reason)) => {
                let (name, message, stack) = self.describe(&reason);
                let stack = stack.map(|s| self.positions.map_stack(&s));
                let message = shape::with_names(code, message, stack.as_deref());
                let stack = shape::with_excerpt(code, &message, stack);
                let message = super::hints::with_hint(&name, message, code, servers);
                self.fail(id, ErrorKind::Js(name), message, stack, false)
            }
            Ok(PromiseState::Pending) => self.fail(
                id,
                ErrorKind::Js("Error".to_owned()),
                "the code awaited a promise that can never settle: nothing is left in the job queue"
                    .to_owned(),
                None,
                false,
            ),
            Err(RunError::SyntaxMessage(message)) => {
                // Code nested deeper than the parser's stack bound is a RangeError, as in V8.
                let name = if message == boa_parser::native_stack::MESSAGE {
                    "RangeError"
                } else {
                    "SyntaxError"
                };
                let stack = shape::with_excerpt(code, &message, None);
                let message = super::hints::with_hint(name, message, code, servers);
                self.fail(id, ErrorKind::Js(name.to_owned()), message, stack, false)
            }
            Err(RunError::Syntax(e)) => {
                let message = e.to_string();
                let name = message.split(':').next().unwrap_or("SyntaxError").to_owned();
                let message = message.split_once(": ").map_or(message.clone(), |(_, m)| m.to_owned());
                let message = super::hints::with_hint(&name, message, code, servers);
                self.fail(id, ErrorKind::Js(name), message, None, false)
            }
            Err(RunError::Abort(Abort::Engine(e))) => {
                // Boa's runtime limits (recursion, stack size) are uncatchable and can leave the
                // Context damaged, so the worker is replaced after reporting them.
                let text = e.to_string();
                let (first, stack) = text.split_once('\n').unwrap_or((&text, ""));
                let reason = first.strip_prefix("RuntimeLimitError: ").unwrap_or(first);
                let message = format!(
                    "Maximum call stack size exceeded: {reason}; the worker was replaced"
                );
                let stack = (!stack.is_empty()).then(|| stack.to_owned());
                self.fail(id, ErrorKind::Js("RangeError".to_owned()), message, stack, true)
            }
            Err(RunError::Abort(Abort::Channel)) => return None,
        };
        Some(reply)
    }

    async fn run(&mut self, code: &str, inbound: &mut Inbound) -> Result<PromiseState, RunError> {
        let wrapped =
            shape::wrap(code, self.context.interner_mut()).map_err(RunError::SyntaxMessage)?;
        self.positions = wrapped.positions;
        let path = std::path::Path::new(shape::CODE_PATH);
        let script = boa_engine::Script::parse(
            Source::from_bytes(&wrapped.source).with_path(path),
            None,
            &mut self.context,
        )
        .map_err(RunError::Syntax)?;
        let value = script
            .evaluate(&mut self.context)
            .map_err(|e| RunError::Abort(Abort::Engine(e)))?;
        let promise = match value
            .as_object()
            .and_then(|o| JsPromise::from_object(o).ok())
        {
            Some(p) => p,
            None => JsPromise::resolve(value, &mut self.context)
                .map_err(|e| RunError::Abort(Abort::Engine(e)))?,
        };
        self.call_promise = Some(JsObject::from(promise.clone()));
        self.run_to_completion(inbound)
            .await
            .map_err(RunError::Abort)?;
        Ok(promise.state())
    }

    /// The event loop of one call: drain microtasks, start host calls, and sleep until a host
    /// reply arrives or stdout can take more of the frames queued for the supervisor; finish
    /// when no microtask and no host call is left (as Node finishes a script once its event
    /// loop is empty). Never holds the Context borrow across `.await`, and never blocks on a
    /// write: replies keep being read while frames wait for the pipe.
    async fn run_to_completion(&mut self, inbound: &mut Inbound) -> Result<(), Abort> {
        let executor = self.executor.clone();
        let read_stdin = !self.stop_reading_stdin;
        let context = RefCell::new(&mut self.context);
        let mut in_flight = FuturesUnordered::new();
        loop {
            executor
                .drain_microtasks(&mut context.borrow_mut())
                .map_err(Abort::Engine)?;
            for job in executor.take_async_jobs() {
                in_flight.push(job.call(&context));
            }
            if in_flight.is_empty() {
                if executor.has_microtasks() {
                    continue;
                }
                return Ok(());
            }
            tokio::select! {
                biased;
                Some(done) = in_flight.next() => {
                    done.map_err(Abort::Engine)?;
                }
                () = outbound::write_some() => {}
                message = inbound.recv(), if read_stdin => match message {
                    Some(ToWorker::HostReply { call, result }) => {
                        let sender = CALL.with(|c| c.pending.borrow_mut().remove(&call));
                        if let Some(sender) = sender {
                            let _ = sender.send(result);
                        }
                    }
                    _ => return Err(Abort::Channel),
                },
            }
        }
    }

    fn serialize(&mut self, value: &JsValue, what: &str) -> Result<String, String> {
        let args = [
            value.clone(),
            JsValue::from(self.limits.max_json_depth),
            JsValue::from(JsString::from(what)),
        ];
        match self
            .serialize
            .call(&JsValue::undefined(), &args, &mut self.context)
        {
            Ok(json) => Ok(js_to_string(&json)),
            Err(e) => {
                let reason = e.into_opaque(&mut self.context).unwrap_or_default();
                let (name, message, _) = self.describe(&reason);
                Err(format!("{name}: {message}"))
            }
        }
    }

    /// Logs, at level `error`, each promise of this call still rejected with no handler
    /// (`Uncaught (in promise) Name: message`, Chrome's words), except the call's own promise,
    /// whose rejection is the call's error. Goes through the call's `max_log_bytes` like
    /// `console.error`.
    fn report_unhandled_rejections(&mut self) {
        let call_promise = self.call_promise.take();
        let (unhandled, untracked) = self.hooks.take_unhandled();
        for promise in unhandled {
            let promise = promise.upcast();
            if call_promise
                .as_ref()
                .is_some_and(|p| JsObject::equals(p, &promise))
            {
                continue;
            }
            let Ok(promise) = JsPromise::from_object(promise) else {
                continue;
            };
            if let PromiseState::Rejected(reason) = promise.state() {
                let (name, message, _) = self.describe(&reason);
                push_log(
                    LogLevel::Error,
                    format!("Uncaught (in promise) {name}: {message}"),
                );
            }
        }
        if untracked > 0 {
            push_log(
                LogLevel::Error,
                format!("Uncaught (in promise): {untracked} more rejections with no handler"),
            );
        }
    }

    fn describe(&mut self, reason: &JsValue) -> (String, String, Option<String>) {
        let parts = self
            .describe
            .call(
                &JsValue::undefined(),
                std::slice::from_ref(reason),
                &mut self.context,
            )
            .ok()
            .and_then(|v| v.as_object());
        let Some(parts) = parts else {
            return ("Error".to_owned(), "unknown error".to_owned(), None);
        };
        let mut get = |i: u32| parts.get(i, &mut self.context).unwrap_or_default();
        let (name, message, stack) = (get(0), get(1), get(2));
        (
            js_to_string(&name),
            js_to_string(&message),
            stack.as_string().map(|s| s.to_std_string_lossy()),
        )
    }

    /// Serialises the result, then commits the keys of `mcp.state` the call changed; any
    /// failure rolls the call back. The commit is refused unless every changed key and value
    /// parses back exactly as a later `Restore` would parse it, so a session cannot be left
    /// with a state its next worker could not load.
    fn commit(&mut self, id: u64, value: &JsValue) -> FromWorker {
        let mut result = match self.serialize(value, "result") {
            Ok(json) => json,
            Err(message) => {
                let message = format!("the result cannot be returned as JSON: {message}");
                return self.fail(id, ErrorKind::Serialization, message, None, false);
            }
        };
        let access = self.state_access();
        let delta = match self.prepare_delta() {
            Ok(delta) => delta,
            Err((kind, message)) => return self.fail(id, kind, message, None, false),
        };
        let mut sizes = None;
        if let Some(delta) = &delta {
            match self.check_delta(delta) {
                Ok(new_sizes) => sizes = Some(new_sizes),
                Err((kind, message)) => return self.fail(id, kind, message, None, false),
            }
        }
        let truncated_from_bytes = (result.len() > self.limits.max_result_bytes).then(|| {
            let total = result.len();
            let mut cut = self.limits.max_result_bytes;
            while !result.is_char_boundary(cut) {
                cut -= 1;
            }
            result.truncate(cut);
            total
        });
        if self
            .accept_state
            .call(&JsValue::undefined(), &[], &mut self.context)
            .is_err()
        {
            let message = "mcp.state could not be reset after commit".to_owned();
            return self.fail(id, ErrorKind::State, message, None, true);
        }
        if let Some(update) = sizes {
            if update.replace {
                self.committed_sizes.clear();
            }
            for (key, size) in update.sizes {
                match size {
                    Some(size) => self.committed_sizes.insert(key, size),
                    None => self.committed_sizes.remove(&key),
                };
            }
            self.committed_sum = update.sum;
        }
        FromWorker::Done {
            id,
            result,
            truncated_from_bytes,
            state: delta,
            access,
            skills_used: self.take_skills_used(),
            effects: self.take_effects(),
        }
    }

    /// Whether the call read or wrote `mcp.state`, from the prelude's Proxy.
    fn state_access(&mut self) -> StateAccess {
        let flags = self
            .state_access
            .call(&JsValue::undefined(), &[], &mut self.context)
            .ok()
            .and_then(|v| v.as_object());
        let Some(flags) = flags else {
            return StateAccess::default();
        };
        let mut flag = |i: u32| {
            flags
                .get(i, &mut self.context)
                .is_ok_and(|v| v.to_boolean())
        };
        StateAccess {
            read: flag(0),
            written: flag(1),
        }
    }

    /// Asks the prelude for the call's changes to `mcp.state`: `None` when it changed nothing.
    fn prepare_delta(&mut self) -> Result<Option<StateDelta>, (ErrorKind, String)> {
        let depth = JsValue::from(self.limits.max_json_depth);
        let pending = match self.prepare_state.call(
            &JsValue::undefined(),
            std::slice::from_ref(&depth),
            &mut self.context,
        ) {
            Ok(pending) => pending,
            Err(e) => {
                let reason = e.into_opaque(&mut self.context).unwrap_or_default();
                let (_, message, _) = self.describe(&reason);
                let message = if message.starts_with("mcp.state must be") {
                    message
                } else {
                    format!("mcp.state cannot be saved as JSON: {message}")
                };
                return Err((ErrorKind::State, message));
            }
        };
        let Some(pending) = pending.as_object() else {
            return Ok(None);
        };
        let internal = |what: &str| {
            (
                ErrorKind::State,
                format!("mcp.state could not be committed: {what}"),
            )
        };
        let context = &mut self.context;
        let replace = pending.get(0, context).unwrap_or_default().to_boolean();
        let mut list = |i: u32, what: &str| {
            let value = pending.get(i, context).unwrap_or_default();
            string_list(&value, context).map_err(|()| internal(what))
        };
        let keys = list(1, "a key")?;
        let values = list(2, "a value")?;
        let order = list(3, "the order")?;
        let (Some(keys), Some(values)) = (keys, values) else {
            return Err(internal("no changes"));
        };
        if keys.len() != values.len() {
            return Err(internal("keys and values differ in number"));
        }
        let mut changes = Vec::with_capacity(keys.len());
        for (key, value) in keys.into_iter().zip(values) {
            changes.push((key.ok_or_else(|| internal("a null key"))?, value));
        }
        let order = order
            .map(|order| order.into_iter().collect::<Option<Vec<String>>>())
            .map(|order| order.ok_or_else(|| internal("a null key in the order")))
            .transpose()?;
        Ok(Some(StateDelta {
            replace,
            changes,
            order,
        }))
    }

    /// Refuses a delta that a later `Restore` could not load (every key must be a JSON string
    /// and every value JSON text that parses) or that takes the state over `max_state_bytes`.
    /// Returns the new size of each changed key (`None`: deleted) and the new sum of sizes.
    fn check_delta(&self, delta: &StateDelta) -> Result<SizeUpdate, (ErrorKind, String)> {
        // Sizes of the changed keys after the delta, overriding `committed_sizes`.
        let mut sizes: HashMap<&str, Option<usize>> = HashMap::new();
        let size_of = |sizes: &HashMap<&str, Option<usize>>, key: &str| match sizes.get(key) {
            Some(size) => *size,
            None if delta.replace => None,
            None => self.committed_sizes.get(key).copied(),
        };
        let (mut sum, mut keys) = if delta.replace {
            (0, 0)
        } else {
            (self.committed_sum, self.committed_sizes.len())
        };
        for (key, value) in &delta.changes {
            if let Some(old) = size_of(&sizes, key) {
                sum -= old;
                keys -= 1;
            }
            if !matches!(parse_restorable(key), Ok(serde_json::Value::String(_))) {
                let message = format!(
                    "mcp.state cannot be committed: the key {key} does not read back as a string"
                );
                return Err((ErrorKind::State, message));
            }
            match value {
                Some(value) => {
                    let max_depth = self.limits.max_json_depth as usize;
                    let too_deep = format!(
                        "mcp.state cannot be saved as JSON: {} is nested more than {max_depth} levels deep",
                        key_path(key)
                    );
                    match parse_restorable(value) {
                        // The state object itself is one level.
                        Ok(parsed) if nesting(&parsed) < max_depth => {}
                        Ok(_) => return Err((ErrorKind::State, too_deep)),
                        Err(e) if e.to_string().contains("recursion limit") => {
                            return Err((ErrorKind::State, too_deep));
                        }
                        Err(e) => {
                            let message = format!(
                                "mcp.state cannot be committed: the value of {} would not read back ({e})",
                                key_path(key)
                            );
                            return Err((ErrorKind::State, message));
                        }
                    }
                    let size = key.len() + value.len() + 2;
                    sum += size;
                    keys += 1;
                    sizes.insert(key, Some(size));
                }
                None => {
                    sizes.insert(key, None);
                }
            }
        }
        let bytes = state_bytes(sum, keys);
        if bytes > self.limits.max_state_bytes {
            let message = format!(
                "mcp.state is {bytes} bytes as JSON, over max_state_bytes={}",
                self.limits.max_state_bytes
            );
            return Err((ErrorKind::StateLimit, message));
        }
        Ok(SizeUpdate {
            replace: delta.replace,
            sizes: sizes
                .into_iter()
                .map(|(k, size)| (k.to_owned(), size))
                .collect(),
            sum,
        })
    }

    /// Rolls `mcp.state` back and builds the `Failed` frame; its message says that the state
    /// was rolled back only when the call had written to it.
    fn fail(
        &mut self,
        id: u64,
        kind: ErrorKind,
        message: String,
        stack: Option<String>,
        poisoned: bool,
    ) -> FromWorker {
        self.executor.clear();
        let written = self.state_access().written;
        let restored = self
            .discard_changes
            .call(&JsValue::undefined(), &[], &mut self.context)
            .is_ok();
        FromWorker::Failed {
            id,
            error: CallError {
                kind,
                message: if written {
                    format!("{message} {ROLLED_BACK}")
                } else {
                    message
                },
                stack: stack.map(shorten_stack),
            },
            poisoned: poisoned || !restored,
            skills_used: self.take_skills_used(),
            effects: self.take_effects(),
        }
    }
}

/// Levels of arrays and objects in `value` (0 for a scalar).
fn nesting(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

/// `mcp.state.key` for a key (a JSON string literal) that is an identifier, else
/// `mcp.state["key"]`.
fn key_path(key_json: &str) -> String {
    let bare = key_json
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .filter(|k| {
            k.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        });
    match bare {
        Some(name) => format!("mcp.state.{name}"),
        None => format!("mcp.state[{key_json}]"),
    }
}

/// The strings (or `None` for `null`) of a JS array; `Ok(None)` when `value` is not an
/// object, `Err` for any other element.
fn string_list(value: &JsValue, context: &mut Context) -> Result<Option<Vec<Option<String>>>, ()> {
    let Some(array) = value.as_object().and_then(|o| JsArray::from_object(o).ok()) else {
        return Ok(None);
    };
    let len = array.length(context).map_err(|_| ())?;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or_default());
    for i in 0..len {
        let item = array.get(i, context).map_err(|_| ())?;
        if item.is_null() {
            out.push(None);
        } else {
            let s = item.as_string().ok_or(())?;
            out.push(Some(s.to_std_string().map_err(|_| ())?));
        }
    }
    Ok(Some(out))
}

/// Parses JSON text as [`parse_json`] does when code reads a key (lone-surrogate escapes
/// allowed).
fn parse_restorable(json: &str) -> Result<serde_json::Value, serde_json::Error> {
    match protect_lone_surrogates(json) {
        Some(text) => text.parse(),
        None => json.parse(),
    }
}

/// Marks a replaced escape in [`protect_lone_surrogates`]; a noncharacter, so it is rare in
/// real text, and doubled when it does occur.
const SENTINEL: char = '\u{FDD0}';

/// Boa 0.22's `JSON.parse` validates with serde_json, which rejects the `\uD800`-style escapes
/// that `JSON.stringify` writes for lone surrogates. Rewrites each such escape in JSON text to
/// `SENTINEL` + its 4 hex digits (and each literal `SENTINEL` to two), so the text parses and
/// the prelude's `unprotect` can restore the exact strings. `None` when there is nothing to
/// rewrite, the common case.
fn protect_lone_surrogates(json: &str) -> Option<String> {
    let escaped_unit = |rest: &str| {
        (rest.len() >= 5 && rest.as_bytes()[0] == b'u' && rest.is_char_boundary(5))
            .then(|| u16::from_str_radix(&rest[1..5], 16).ok())
            .flatten()
    };
    let is_surrogate_escape =
        |rest: &str| escaped_unit(rest).is_some_and(|u| (0xD800..=0xDFFF).contains(&u));
    let is_sentinel_escape = |rest: &str| escaped_unit(rest) == Some(SENTINEL as u16);
    let mut needed = json.contains(SENTINEL);
    let mut rest = json;
    while !needed && let Some(i) = rest.find('\\') {
        let after = &rest[i + 1..];
        needed = is_surrogate_escape(after) || is_sentinel_escape(after);
        // Skip the escaped character so `\\ud800` (a backslash, then text) is not mistaken.
        rest = &after[after.chars().next().map_or(0, char::len_utf8)..];
    }
    if !needed {
        return None;
    }
    let mut out = String::with_capacity(json.len() + 16);
    let mut chars = json.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            SENTINEL => {
                out.push(SENTINEL);
                out.push(SENTINEL);
            }
            '\\' if is_sentinel_escape(&json[i + 1..]) => {
                out.push(SENTINEL);
                out.push(SENTINEL);
                for _ in 0..5 {
                    chars.next();
                }
            }
            '\\' if is_surrogate_escape(&json[i + 1..]) => {
                out.push(SENTINEL);
                out.push_str(&json[i + 2..i + 6]);
                for _ in 0..5 {
                    chars.next();
                }
            }
            '\\' => {
                out.push('\\');
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            }
            _ => out.push(c),
        }
    }
    Some(out)
}

/// Keeps the first `MAX_STACK_FRAMES` lines of a stack; deep recursion otherwise produces
/// thousands of identical frames.
fn shorten_stack(stack: String) -> String {
    const MAX_STACK_FRAMES: usize = 20;
    let total = stack.lines().count();
    if total <= MAX_STACK_FRAMES {
        return stack;
    }
    let mut short = stack
        .lines()
        .take(MAX_STACK_FRAMES)
        .collect::<Vec<_>>()
        .join("\n");
    short.push_str(&format!("\n    … {} more frames", total - MAX_STACK_FRAMES));
    short
}

enum RunError {
    Syntax(JsError),
    /// A syntax error found by parsing the user's code alone.
    SyntaxMessage(String),
    Abort(Abort),
}

/// The standard globals of the WinterTC minimum common API that agent code reaches for first,
/// as `boa_runtime` 0.22 provides them: `atob`/`btoa`, `TextEncoder`/`TextDecoder`, `URL`,
/// `structuredClone` and `AbortController`/`AbortSignal`; plus `crypto.randomUUID()` (a v4
/// UUID from the OS's random source). Never `boa_runtime`'s `fetch`, `process` or timers: the
/// network and the environment stay out of reach, and timers are the prelude's own (they count
/// against the call's deadline). Registered before the prelude, so its effect wrappers see
/// `crypto` (a call that reads it is not cacheable) and `lockdown` freezes them all. `Intl` is
/// not offered: Boa's `intl` feature adds ICU data to every build and to the binary.
fn register_web_globals(context: &mut Context) -> JsResult<()> {
    use boa_runtime::extensions::{
        AbortControllerExtension, Base64Extension, EncodingExtension, StructuredCloneExtension,
        UrlExtension,
    };
    boa_runtime::register_extensions(
        (
            Base64Extension,
            EncodingExtension,
            StructuredCloneExtension,
            UrlExtension,
            AbortControllerExtension,
        ),
        None,
        context,
    )?;
    let crypto = boa_engine::object::ObjectInitializer::new(context)
        .function(
            NativeFunction::from_fn_ptr(random_uuid),
            JsString::from("randomUUID"),
            0,
        )
        .build();
    context.register_global_property(
        JsString::from("crypto"),
        crypto,
        Attribute::WRITABLE | Attribute::CONFIGURABLE,
    )
}

/// `crypto.randomUUID()`: a random (version 4) UUID in its 36-character text form.
fn random_uuid(_this: &JsValue, _args: &[JsValue], _context: &mut Context) -> JsResult<JsValue> {
    Ok(JsString::from(uuid::Uuid::new_v4().to_string()).into())
}

/// `mcp.progress` reports a call sends at most; later ones are dropped (the supervisor sends
/// clients at most one progress notification per 100 ms anyway).
pub(crate) const MAX_PROGRESS_REPORTS_PER_CALL: usize = 10_000;

/// Longest `mcp.progress` message sent, in bytes (cut at a character boundary).
pub(crate) const MAX_PROGRESS_MESSAGE_BYTES: usize = 1024;

/// `emit(level, line)`: the native end of `console.*`. Enforces `max_log_bytes` per call and
/// writes one visible marker when output is dropped. `emit('progress', message, fraction)` is
/// the native end of `mcp.progress` (the prelude checks its arguments).
fn emit(_this: &JsValue, args: &[JsValue], _context: &mut Context) -> JsResult<JsValue> {
    let level = args.first().map(js_to_string);
    if level.as_deref() == Some("progress") {
        let fraction = args.get(2).and_then(JsValue::as_number).unwrap_or(0.0);
        let mut message = args.get(1).map(js_to_string).unwrap_or_default();
        push_progress(fraction, &mut message);
        return Ok(JsValue::undefined());
    }
    let level = match level.as_deref() {
        Some("info") => LogLevel::Info,
        Some("warn") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        Some("debug") => LogLevel::Debug,
        _ => LogLevel::Log,
    };
    push_log(level, args.get(1).map(js_to_string).unwrap_or_default());
    Ok(JsValue::undefined())
}

/// Sends one `mcp.progress` report of the current call, at most
/// [`MAX_PROGRESS_REPORTS_PER_CALL`] per call, its message cut to
/// [`MAX_PROGRESS_MESSAGE_BYTES`].
fn push_progress(fraction: f64, message: &mut String) {
    CALL.with(|c| {
        let sent = c.progress_reports.get();
        if sent >= MAX_PROGRESS_REPORTS_PER_CALL {
            return;
        }
        c.progress_reports.set(sent + 1);
        if message.len() > MAX_PROGRESS_MESSAGE_BYTES {
            let mut cut = MAX_PROGRESS_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        outbound::push(&FromWorker::Progress {
            id: c.id.get(),
            fraction,
            message: std::mem::take(message),
        });
    });
}

/// Sends one log line of the current call, within its `max_log_bytes`: the line is cut at the
/// limit and one visible marker says that later output was dropped.
fn push_log(level: LogLevel, mut message: String) {
    CALL.with(|c| {
        if c.log_truncated.get() {
            return;
        }
        let max = c.max_log_bytes.get();
        let used = c.log_bytes.get();
        let id = c.id.get();
        if used + message.len() <= max {
            c.log_bytes.set(used + message.len());
            outbound::push(&FromWorker::Log { id, entry: LogEntry { level, message } });
            return;
        }
        let mut cut = max.saturating_sub(used);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        if !message.is_empty() {
            outbound::push(&FromWorker::Log { id, entry: LogEntry { level, message } });
        }
        c.log_truncated.set(true);
        c.log_bytes.set(max);
        let marker = format!(
            "[console output truncated: this call reached max_log_bytes={max}; later output was dropped]"
        );
        outbound::push(&FromWorker::Log { id, entry: LogEntry { level: LogLevel::Warn, message: marker } });
    });
}

/// `parseJson(text)`: `[value, escaped]`, the value of committed JSON text as fresh objects
/// (serde_json, then `JsValue::from_json`: no JS parser, nothing interned in the Context).
/// `escaped` means lone-surrogate escapes were rewritten by [`protect_lone_surrogates`] and the
/// prelude must undo that in every string.
fn parse_json(_this: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let text = args
        .first()
        .and_then(JsValue::as_string)
        .ok_or_else(|| JsNativeError::typ().with_message("parseJson: not a string"))?
        .to_std_string()
        .map_err(|_| {
            JsNativeError::typ().with_message("parseJson: unpaired surrogate in JSON text")
        })?;
    let (value, escaped) = match protect_lone_surrogates(&text) {
        Some(protected) => (protected.parse::<serde_json::Value>(), true),
        None => (text.parse::<serde_json::Value>(), false),
    };
    let value = value.map_err(|e| {
        JsNativeError::syntax().with_message(format!("committed mcp.state does not parse: {e}"))
    })?;
    let value = JsValue::from_json(&value, context)?;
    Ok(JsArray::from_iter([value, JsValue::from(escaped)], context).into())
}

/// `isSkillName(name)`: whether `name` is a string that is a valid skill name.
fn is_skill_name_fn(
    _this: &JsValue,
    args: &[JsValue],
    _context: &mut Context,
) -> JsResult<JsValue> {
    let valid = args
        .first()
        .and_then(JsValue::as_string)
        .and_then(|s| s.to_std_string().ok())
        .is_some_and(|name| is_skill_name(&name));
    Ok(JsValue::from(valid))
}

/// The two string arguments of a skill native, or a `TypeError` naming `where`.
fn name_and_source(args: &[JsValue], place: &str) -> JsResult<(String, String)> {
    let text = |i: usize, what: &str| -> JsResult<String> {
        args.get(i)
            .and_then(JsValue::as_string)
            .ok_or_else(|| {
                JsError::from(
                    JsNativeError::typ()
                        .with_message(format!("{place}: `{what}` must be a string")),
                )
            })?
            .to_std_string()
            .map_err(|_| {
                JsError::from(JsNativeError::typ().with_message(format!(
                    "{place}: the {what} contains an unpaired surrogate"
                )))
            })
    };
    Ok((text(0, "name")?, text(1, "source")?))
}

/// A refused skill as the JavaScript error of its class, its message prefixed by `place`.
fn skill_error(place: &str, error: &skills::SkillError) -> JsError {
    let message = format!("{place}: {error}");
    let native = match error.js_class() {
        "RangeError" => JsNativeError::range(),
        "SyntaxError" => JsNativeError::syntax(),
        _ => JsNativeError::typ(),
    };
    native.with_message(message).into()
}

/// `checkSkill(name, source)`: `{params, tools}` of a skill `mcp.skills.save` may send, or the
/// `TypeError` / `RangeError` / `SyntaxError` that refuses it (see [`skills::analyze`]).
fn check_skill(_this: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    const PLACE: &str = "mcp.skills.save";
    let (name, source) = name_and_source(args, PLACE)?;
    let info = skills::analyze(&name, &source).map_err(|e| skill_error(PLACE, &e))?;
    let json = serde_json::json!({ "params": info.params, "tools": info.tools });
    JsValue::from_json(&json, context)
}

/// `compileSkill(name, source)`: the skill's function, evaluated as a script in the global
/// scope. The source is checked again first (one function expression), since it comes from
/// the library rather than from this worker's own save. The script is
/// `'use strict';({<name>: (<source>\n)}).<name>`, strict as agent code is, so the function is named after the skill when its source
/// gives it no name, and its path is `skills.<name>`: both show in stack traces. Lines match
/// the source's; columns on its first line are shifted by the prefix.
fn compile_skill(_this: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let (name, source) = name_and_source(args, "skills")?;
    let place = format!("skills.{name}");
    skills::analyze(&name, &source).map_err(|e| skill_error(&place, &e))?;
    let text = format!("'use strict';({{{name}: ({source}\n)}}).{name}");
    let path = std::path::PathBuf::from(&place);
    let script =
        boa_engine::Script::parse(Source::from_bytes(&text).with_path(&path), None, context)?;
    script.evaluate(context)
}

/// `freezeReachable(roots, ...skip)`: freezes every object reachable from the array `roots`
/// through own property values, getters, setters and prototypes (as the prelude's `lockdown`
/// describes), except the `skip` objects; returns how many objects it froze. Prototypes and own
/// properties are read through the ordinary operations (`Object.getPrototypeOf`,
/// `Object.getOwnPropertyDescriptor`), so a Proxy answers through its target; no getter is
/// called. Any object that refuses to be frozen is a `TypeError`: the worker does not start.
fn freeze_reachable(_this: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    use boa_engine::builtins::object::OrdinaryObject;
    use boa_engine::object::IntegrityLevel;

    let refused =
        |what: &str| JsError::from(JsNativeError::typ().with_message(format!("lockdown: {what}")));
    let roots = args
        .first()
        .and_then(JsValue::as_object)
        .and_then(|o| JsArray::from_object(o).ok())
        .ok_or_else(|| refused("the roots must be an array"))?;
    let skip: Vec<JsObject> = args.iter().skip(1).filter_map(JsValue::as_object).collect();
    let mut queue = Vec::new();
    for i in 0..roots.length(context)? {
        queue.push(roots.get(i, context)?);
    }
    let mut seen: HashSet<JsObject> = HashSet::new();
    let undefined = JsValue::undefined();
    while let Some(value) = queue.pop() {
        let Some(object) = value.as_object() else {
            continue;
        };
        if skip.contains(&object) || !seen.insert(object.clone()) {
            continue;
        }
        let frozen = object.set_integrity_level(IntegrityLevel::Frozen, context)?;
        if !frozen {
            return Err(refused("an object refused to be frozen"));
        }
        queue.push(OrdinaryObject::get_prototype_of(
            &undefined,
            std::slice::from_ref(&value),
            context,
        )?);
        for key in object.own_property_keys(context)? {
            // An ordinary object's own properties are in its property map (read without a
            // descriptor object: ~5x faster); a Proxy's or other exotic object's are not.
            let own = object.borrow().properties().get(&key);
            if let Some(own) = own {
                queue.extend(own.value().cloned());
                queue.extend(own.get().cloned());
                queue.extend(own.set().cloned());
                continue;
            }
            let descriptor = OrdinaryObject::get_own_property_descriptor(
                &undefined,
                &[value.clone(), key.into()],
                context,
            )?;
            let Some(descriptor) = descriptor.as_object() else {
                continue;
            };
            for field in ["value", "get", "set"] {
                queue.push(descriptor.get(JsString::from(field), context)?);
            }
        }
    }
    Ok(JsValue::from(seen.len()))
}

/// `sleep(ms)`: resolves after `ms` milliseconds (clamped to 0..=2^31-1, as browsers clamp
/// timer delays), on the worker's own tokio timer; no round trip to the supervisor.
async fn sleep(
    _this: &JsValue,
    args: &[JsValue],
    _context: &RefCell<&mut Context>,
) -> JsResult<JsValue> {
    let ms = args.first().and_then(JsValue::as_number).unwrap_or(0.0);
    let ms = if ms.is_finite() {
        ms.clamp(0.0, f64::from(i32::MAX))
    } else {
        0.0
    };
    tokio::time::sleep(std::time::Duration::from_secs_f64(ms / 1000.0)).await;
    Ok(JsValue::undefined())
}

/// `hostCall(opJson)`: sends a `HostCall` frame and resolves with the supervisor's reply.
/// Up to `max_host_calls_in_flight` can be in flight at once, each waiting on its own oneshot
/// channel; later ones wait for a free slot (FIFO) before their frame is sent, so
/// `Promise.all` over thousands of calls works and the supervisor never sees more.
async fn host_call(
    _this: &JsValue,
    args: &[JsValue],
    context: &RefCell<&mut Context>,
) -> JsResult<JsValue> {
    let json = args.first().map(js_to_string).unwrap_or_default();
    if json.len() > MAX_HOST_MESSAGE_BYTES {
        let message = format!(
            "the call's arguments are {} bytes as JSON, over the {MAX_HOST_MESSAGE_BYTES}-byte limit for host calls",
            json.len()
        );
        return Err(JsNativeError::range().with_message(message).into());
    }
    let op: HostOp = serde_json::from_str(&json).map_err(|e| {
        let message = if e.to_string().contains("recursion limit") {
            "the call's arguments are nested more than 128 levels deep".to_owned()
        } else {
            format!("invalid host call: {e}")
        };
        JsNativeError::typ().with_message(message)
    })?;
    CALL.with(|c| c.tracked.borrow_mut().record(&op));
    // Waits, in call order, for one of the `max_host_calls_in_flight` slots; the permit is
    // held until the reply arrives (or the call ends and drops this future).
    let slots = CALL
        .with(|c| c.host_slots.borrow().clone())
        .ok_or_else(|| JsNativeError::error().with_message("host call outside a call"))?;
    let _slot = slots
        .acquire_owned()
        .await
        .map_err(|_| JsNativeError::error().with_message("host call abandoned"))?;
    let (tx, rx) = oneshot::channel();
    let (id, call) = CALL.with(|c| {
        let call = c.next_host_call.get() + 1;
        c.next_host_call.set(call);
        c.pending.borrow_mut().insert(call, tx);
        (c.id.get(), call)
    });
    outbound::push(&FromWorker::HostCall { id, call, op });
    let reply = rx
        .await
        .map_err(|_| JsNativeError::error().with_message("host call abandoned"))?;
    match reply {
        Ok(value) => JsValue::from_json(&value, &mut context.borrow_mut()),
        Err(message) => Err(JsNativeError::error().with_message(message).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::{Engine, Source, protect_lone_surrogates, split_entries};
    use crate::protocol::WorkerLimits;

    #[test]
    fn restore_entries_split_by_byte_sizes_on_char_boundaries() {
        let raw = r#""a"1"\u00e9""é""#;
        assert_eq!(
            split_entries(&[(3, 1), (8, 4)], raw.as_bytes()),
            Ok(vec![(r#""a""#, "1"), (r#""\u00e9""#, r#""é""#)])
        );
        assert_eq!(split_entries(&[], b""), Ok(vec![]));
        // A size inside a multi-byte character, too long, or leaving bytes over.
        for sizes in [&[(3, 1), (8, 2)][..], &[(3, 1), (8, 9)], &[(3, 1)]] {
            assert!(split_entries(sizes, raw.as_bytes()).is_err(), "{sizes:?}");
        }
        assert!(split_entries(&[(1, 0)], b"\xff").is_err());
    }

    fn engine() -> Engine {
        let limits = WorkerLimits {
            memory_mib: 256,
            max_log_bytes: 1 << 10,
            max_state_bytes: 1 << 20,
            max_result_bytes: 1 << 10,
            max_json_depth: 100,
            max_host_calls_in_flight: 8,
        };
        Engine::new(limits, false).expect("the engine starts")
    }

    /// The paths (from `globalThis` and the hidden intrinsics) of the objects that are not
    /// frozen after `lockdown`, found by a walk of its own. `skills` and `servers` are the
    /// exceptions: their names change between calls, so their traps keep them read-only
    /// instead, which the walk checks for `servers` (every write is refused).
    const UNFROZEN: &str = r"
        const out = [];
        const seen = new Set([skills, servers]);
        if (Reflect.set(servers, 'x', 1) || Reflect.defineProperty(servers, 'x', { value: 1 })
            || Reflect.deleteProperty(servers, 'x') || Reflect.setPrototypeOf(servers, {})
            || Reflect.preventExtensions(servers)) out.push('servers');
        // Fresh objects whose prototypes are hidden intrinsics: only those prototypes count.
        const queue = [
            [async function () {}, 'async'], [function* () {}, 'gen'], [async function* () {}, 'asyncgen'],
            [[].values(), 'arrayiter'], [new Map().keys(), 'mapiter'], [new Set().keys(), 'setiter'],
            [''[Symbol.iterator](), 'stringiter'], [/a/[Symbol.matchAll](''), 'regexpiter'],
            [Iterator.from({ next() { return { done: true }; } }), 'wrap'], [[].values().map((x) => x), 'helper'],
        ].map(([o, p]) => [Object.getPrototypeOf(o), p + '.__proto__']);
        queue.push([globalThis, 'globalThis']);
        while (queue.length > 0) {
            const [o, path] = queue.pop();
            if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue;
            seen.add(o);
            if (!Object.isFrozen(o)) out.push(path);
            queue.push([Object.getPrototypeOf(o), path + '.__proto__']);
            for (const k of Reflect.ownKeys(o)) {
                const d = Reflect.getOwnPropertyDescriptor(o, k);
                const p = path + '.' + String(k);
                if ('value' in d) queue.push([d.value, p]); else { queue.push([d.get, p + '<get>']); queue.push([d.set, p + '<set>']); }
            }
        }
        [out, seen.size]
    ";

    #[test]
    fn every_object_reachable_from_the_globals_is_frozen() {
        let mut engine = engine();
        let value = engine
            .context
            .eval(Source::from_bytes(UNFROZEN))
            .expect("the walk runs");
        let json = value
            .to_json(&mut engine.context)
            .ok()
            .flatten()
            .expect("JSON");
        assert_eq!(json[0], serde_json::json!([]), "not frozen");
        assert!(json[1].as_u64().is_some_and(|n| n > 500), "{json}");
        let sloppy = engine
            .context
            .eval(Source::from_bytes("leaked = 1; typeof leaked"))
            .expect("sloppy assignment to a frozen global fails silently");
        assert_eq!(
            sloppy.to_json(&mut engine.context).ok().flatten(),
            Some(serde_json::json!("undefined"))
        );
    }

    #[test]
    fn a_new_engine_has_no_effects_and_reading_them_resets_them() {
        let mut engine = engine();
        assert_eq!(engine.take_effects(), crate::outcome::Effects::default());
        engine
            .context
            .eval(Source::from_bytes(
                "Math.random(); new Date(); setTimeout(() => {}, 0)",
            ))
            .expect("runs");
        let effects = engine.take_effects();
        assert!(
            effects.time && effects.random && effects.timers,
            "{effects:?}"
        );
        assert_eq!(engine.take_effects(), crate::outcome::Effects::default());
    }

    #[test]
    fn plain_json_is_left_alone() {
        assert_eq!(
            protect_lone_surrogates(r#"{"a":"\\ud800 \u0041 😀"}"#),
            None
        );
    }

    #[test]
    fn lone_surrogate_escapes_and_sentinels_are_rewritten() {
        assert_eq!(
            protect_lone_surrogates(r#"{"\udc00":"x\ud800\\ud800\uFDD0"}"#).as_deref(),
            Some("{\"\u{FDD0}dc00\":\"x\u{FDD0}d800\\\\ud800\u{FDD0}\u{FDD0}\"}")
        );
    }
}
