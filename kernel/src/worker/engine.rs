//! One Boa `Context` and the JavaScript contract around it: code shape, transactional
//! `mcp.state`, console capture, host calls and result serialisation.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use boa_engine::builtins::promise::PromiseState;
use boa_engine::object::builtins::{JsFunction, JsPromise};
use boa_engine::property::Attribute;
use boa_engine::{
    Context, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue, NativeFunction, Source,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Semaphore, oneshot};

use super::executor::Executor;
use super::inbound::Inbound;
use super::{outbound, shape};
use crate::outcome::{CallError, ErrorKind, LogEntry, LogLevel};
use crate::protocol::{FromWorker, HostOp, MAX_HOST_MESSAGE_BYTES, ToWorker, WorkerLimits};

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
    next_host_call: Cell<u64>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Result<serde_json::Value, String>>>>,
    /// One permit per host call that may be in flight (`max_host_calls_in_flight`); a fresh
    /// semaphore per call, so nothing of an abandoned call holds a slot in the next.
    host_slots: RefCell<Option<Arc<Semaphore>>>,
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
    limits: WorkerLimits,
    serialize: JsFunction,
    describe: JsFunction,
    set_state: JsFunction,
    get_state: JsFunction,
    /// The last committed `mcp.state`, as JSON text.
    committed: String,
    /// Test fault `stop-reading-stdin`: never read stdin while a call runs.
    stop_reading_stdin: bool,
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

fn js_to_string(value: &JsValue) -> String {
    value
        .as_string()
        .map_or_else(String::new, |s| s.to_std_string_escaped())
}

impl Engine {
    /// Builds the Context and the globals agent code sees.
    pub(crate) fn new(limits: WorkerLimits, stop_reading_stdin: bool) -> JsResult<Self> {
        let executor = Rc::new(Executor::default());
        let mut context = Context::builder().job_executor(executor.clone()).build()?;
        let emit = NativeFunction::from_fn_ptr(emit).to_js_function(context.realm());
        let host_call = NativeFunction::from_async_fn(host_call).to_js_function(context.realm());
        let sleep = NativeFunction::from_async_fn(sleep).to_js_function(context.realm());
        let setup = context.eval(Source::from_bytes(PRELUDE))?;
        let setup = setup
            .as_callable()
            .ok_or_else(|| JsNativeError::typ().with_message("prelude is not a function"))?;
        let api = setup.call(
            &JsValue::undefined(),
            &[emit.into(), host_call.into(), sleep.into()],
            &mut context,
        )?;
        let api = api
            .as_object()
            .ok_or_else(|| JsNativeError::typ().with_message("prelude returned no object"))?;
        // `mcp` and `servers` can be neither replaced nor deleted; the others behave like ordinary built-ins (writable, configurable, not enumerable).
        for (name, attribute) in [
            ("mcp", Attribute::empty()),
            ("servers", Attribute::empty()),
            ("console", Attribute::WRITABLE | Attribute::CONFIGURABLE),
            ("ToolError", Attribute::WRITABLE | Attribute::CONFIGURABLE),
            ("setTimeout", Attribute::WRITABLE | Attribute::CONFIGURABLE),
            (
                "clearTimeout",
                Attribute::WRITABLE | Attribute::CONFIGURABLE,
            ),
            (
                "queueMicrotask",
                Attribute::WRITABLE | Attribute::CONFIGURABLE,
            ),
        ] {
            let value = prop(&api, name, &mut context)?;
            context.register_global_property(JsString::from(name), value, attribute)?;
        }
        CALL.with(|c| c.max_log_bytes.set(limits.max_log_bytes));
        Ok(Self {
            serialize: func(&api, "serialize", &mut context)?,
            describe: func(&api, "describe", &mut context)?,
            set_state: func(&api, "setState", &mut context)?,
            get_state: func(&api, "getState", &mut context)?,
            context,
            executor,
            limits,
            committed: "{}".to_owned(),
            stop_reading_stdin,
        })
    }

    /// Replaces `mcp.state` with committed JSON text from the supervisor.
    pub(crate) fn restore(&mut self, state: String) -> FromWorker {
        match self.set_state(&state) {
            Ok(()) => {
                self.committed = state;
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
            },
        }
    }

    /// `mcp.state = JSON.parse(json)`, for JSON text that may hold lone surrogates.
    fn set_state(&mut self, json: &str) -> JsResult<()> {
        let (text, protected) = match protect_lone_surrogates(json) {
            Some(text) => (text, true),
            None => (json.to_owned(), false),
        };
        let args = [
            JsValue::from(JsString::from(text.as_str())),
            JsValue::from(protected),
        ];
        self.set_state
            .call(&JsValue::undefined(), &args, &mut self.context)?;
        Ok(())
    }

    /// Runs one call to completion and returns its `Done` or `Failed` frame. `inbound` carries
    /// host replies while the call waits on them.
    pub(crate) async fn execute(
        &mut self,
        id: u64,
        code: &str,
        inbound: &mut Inbound,
    ) -> Option<FromWorker> {
        let slots = Arc::new(Semaphore::new(self.limits.max_host_calls_in_flight));
        CALL.with(|c| {
            c.id.set(id);
            c.log_bytes.set(0);
            c.log_truncated.set(false);
            *c.host_slots.borrow_mut() = Some(slots);
        });
        let outcome = self.run(code, inbound).await;
        // Host calls still in flight belong to this call only; drop them.
        CALL.with(|c| c.pending.borrow_mut().clear());
        let reply = match outcome {
            Ok(PromiseState::Fulfilled(value)) => self.commit(id, &value),
            Ok(PromiseState::Rejected(reason)) => {
                let (name, message, stack) = self.describe(&reason);
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
                self.fail(id, ErrorKind::Js("SyntaxError".to_owned()), message, None, false)
            }
            Err(RunError::Syntax(e)) => {
                let message = e.to_string();
                let name = message.split(':').next().unwrap_or("SyntaxError").to_owned();
                let message = message.split_once(": ").map_or(message.clone(), |(_, m)| m.to_owned());
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
        let source =
            shape::wrap(code, self.context.interner_mut()).map_err(RunError::SyntaxMessage)?;
        let script =
            boa_engine::Script::parse(Source::from_bytes(&source), None, &mut self.context)
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
            stack.as_string().map(|s| s.to_std_string_escaped()),
        )
    }

    /// Serialises the result, then commits `mcp.state`; any failure rolls the call back.
    fn commit(&mut self, id: u64, value: &JsValue) -> FromWorker {
        let mut result = match self.serialize(value, "result") {
            Ok(json) => json,
            Err(message) => {
                let message = format!("the result cannot be returned as JSON: {message}");
                return self.fail(id, ErrorKind::Serialization, message, None, false);
            }
        };
        let state = match self
            .get_state
            .call(&JsValue::undefined(), &[], &mut self.context)
        {
            Ok(state) => state,
            Err(e) => return self.fail(id, ErrorKind::State, e.to_string(), None, false),
        };
        let is_plain_object = state
            .as_object()
            .is_some_and(|o| !o.is_callable() && !o.is_array());
        if !is_plain_object {
            let message = format!(
                "mcp.state must be a plain object, but it is {}",
                state.type_of()
            );
            return self.fail(id, ErrorKind::State, message, None, false);
        }
        let state = match self.serialize(&state, "mcp.state") {
            Ok(json) => json,
            Err(message) => {
                let message = format!("mcp.state cannot be saved as JSON: {message}");
                return self.fail(id, ErrorKind::State, message, None, false);
            }
        };
        if state.len() > self.limits.max_state_bytes {
            let message = format!(
                "mcp.state is {} bytes as JSON, over max_state_bytes={}",
                state.len(),
                self.limits.max_state_bytes
            );
            return self.fail(id, ErrorKind::StateLimit, message, None, false);
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
        let changed = state != self.committed;
        if changed {
            // The live object becomes exactly what was committed (functions, `undefined` and
            // symbols dropped, Dates as strings), so the next call sees the same plain JSON
            // whether or not a rollback or a worker replacement happened in between.
            if self.set_state(&state).is_err() {
                let message = "mcp.state could not be re-read after commit".to_owned();
                return self.fail(id, ErrorKind::State, message, None, true);
            }
            self.committed = state.clone();
        }
        FromWorker::Done {
            id,
            result,
            truncated_from_bytes,
            state: changed.then_some(state),
        }
    }

    /// Rolls `mcp.state` back and builds the `Failed` frame.
    fn fail(
        &mut self,
        id: u64,
        kind: ErrorKind,
        message: String,
        stack: Option<String>,
        poisoned: bool,
    ) -> FromWorker {
        self.executor.clear();
        let committed = std::mem::take(&mut self.committed);
        let restored = self.set_state(&committed).is_ok();
        self.committed = committed;
        FromWorker::Failed {
            id,
            error: CallError {
                kind,
                message: format!("{message} {ROLLED_BACK}"),
                stack: stack.map(shorten_stack),
            },
            poisoned: poisoned || !restored,
        }
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

/// `emit(level, line)`: the native end of `console.*`. Enforces `max_log_bytes` per call and
/// writes one visible marker when output is dropped.
fn emit(_this: &JsValue, args: &[JsValue], _context: &mut Context) -> JsResult<JsValue> {
    let level = match args.first().map(js_to_string).as_deref() {
        Some("info") => LogLevel::Info,
        Some("warn") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        Some("debug") => LogLevel::Debug,
        _ => LogLevel::Log,
    };
    let mut message = args.get(1).map(js_to_string).unwrap_or_default();
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
    Ok(JsValue::undefined())
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
    use super::protect_lone_surrogates;

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
