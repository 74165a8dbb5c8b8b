//! Arrival order of `execute` calls, per session.
//!
//! Calls on one session must run in the order they arrived. rmcp reads requests one at a time,
//! but runs each on its own task, and tasks can start in any order; two `execute` calls sent
//! back to back could reach the session's FIFO queue swapped.
//!
//! So the transport stamps each `execute` request with its arrival number on its session's gate
//! as it is read ([`Stamped`]), and each call waits for its turn ([`Arrival::wait_turn`])
//! before it joins the session's queue, then lets the next call of that session go
//! ([`Arrival::release`]). Only that hand-over is ordered; the calls themselves still run
//! concurrently. Nothing else is stamped: `search_tools`, listings, resource reads and calls on
//! other sessions never wait for a turn, so no request waits on another session's work.
//!
//! A request that never reaches the handler (rmcp rejected it) or that fails before joining a
//! queue (bad arguments) gives up its turn when its stamp is dropped, so it never holds up the
//! calls behind it. A session's gate exists only while one of its calls holds a stamp, so the
//! gates are bounded by the requests in flight.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::model::{ClientRequest, GetExtensions as _, JsonRpcMessage, JsonRpcRequest};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::Value;
use tokio::sync::Notify;

use crate::server::EXECUTE;
use crate::tools::execute::{DEFAULT_SESSION, MAX_SESSION_CHARS};

/// Hands turns out in arrival order, for one session.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    turn: Notify,
}

#[derive(Debug, Default)]
struct GateState {
    /// The arrival number whose turn it is.
    next: u64,
    /// How many arrival numbers were handed out.
    issued: u64,
    /// Later arrivals that gave up their turn before it came.
    released_early: BTreeSet<u64>,
}

impl Gate {
    fn is_turn_of(&self, number: u64) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).next == number
    }

    /// Gives up `number`'s turn; returns whether every number handed out is now released.
    fn release(&self, number: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.next != number {
            state.released_early.insert(number);
            return false;
        }
        state.next += 1;
        loop {
            let next = state.next;
            if !state.released_early.remove(&next) {
                break;
            }
            state.next += 1;
        }
        let idle = state.next == state.issued;
        drop(state);
        self.turn.notify_waiters();
        idle
    }
}

/// The gates of the sessions that have a stamped call in flight, by session name.
#[derive(Debug, Default)]
struct Gates {
    by_session: Mutex<HashMap<String, Arc<Gate>>>,
}

impl Gates {
    /// A new arrival on `session`'s gate, created if the session has none.
    fn arrive(self: &Arc<Self>, session: &str) -> Arrival {
        let mut gates = self.by_session.lock().unwrap_or_else(|e| e.into_inner());
        let gate = gates.entry(session.to_owned()).or_default().clone();
        let number = {
            let mut state = gate.state.lock().unwrap_or_else(|e| e.into_inner());
            state.issued += 1;
            state.issued - 1
        };
        drop(gates);
        Arrival {
            number,
            session: session.to_owned(),
            gate,
            gates: self.clone(),
            released: AtomicBool::new(false),
        }
    }

    /// Releases `number` on `session`'s gate and forgets the gate once nothing holds a stamp.
    fn release(&self, session: &str, gate: &Arc<Gate>, number: u64) {
        // Lock order: the map, then the gate (as in `arrive`), so no arrival slips in between
        // "all released" and the removal.
        let mut gates = self.by_session.lock().unwrap_or_else(|e| e.into_inner());
        if gate.release(number) && gates.get(session).is_some_and(|g| Arc::ptr_eq(g, gate)) {
            gates.remove(session);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// The arrival stamp of one `execute` request, carried in its extensions.
///
/// Dropping the last clone gives up the turn if [`Arrival::release`] was not called.
#[derive(Debug)]
pub(crate) struct Arrival {
    number: u64,
    session: String,
    gate: Arc<Gate>,
    gates: Arc<Gates>,
    released: AtomicBool,
}

impl Arrival {
    /// Waits until every call on the same session that arrived earlier has joined the
    /// session's queue or given up.
    pub(crate) async fn wait_turn(&self) {
        loop {
            let turn = self.gate.turn.notified();
            let mut turn = std::pin::pin!(turn);
            // Register before checking, so a release in between is not missed.
            turn.as_mut().enable();
            if self.gate.is_turn_of(self.number) {
                return;
            }
            turn.await;
        }
    }

    /// Lets the next arrival on the session go. Idempotent.
    pub(crate) fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.gates.release(&self.session, &self.gate, self.number);
        }
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.release();
    }
}

/// The session an `execute` request's arguments name, as far as ordering is concerned: a
/// missing or `null` `session` is the default session; a value that is not a valid name is
/// rejected before the call waits for a turn, so it needs no stamp.
fn session_of(arguments: Option<&rmcp::model::JsonObject>) -> Option<&str> {
    match arguments.and_then(|a| a.get("session")) {
        None | Some(Value::Null) => Some(DEFAULT_SESSION),
        Some(Value::String(name)) if name.len() <= MAX_SESSION_CHARS => Some(name.as_str()),
        Some(_) => None,
    }
}

/// A server transport that stamps each `execute` request with an [`Arrival`] on its session's
/// gate as it is read.
#[derive(Debug)]
pub(crate) struct Stamped<T> {
    inner: T,
    gates: Arc<Gates>,
}

impl<T> Stamped<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            gates: Arc::default(),
        }
    }

    fn stamp(&mut self, message: &mut RxJsonRpcMessage<RoleServer>) {
        if let JsonRpcMessage::Request(JsonRpcRequest {
            request: ClientRequest::CallToolRequest(request),
            ..
        }) = message
            && request.params.name == EXECUTE
            && let Some(session) = session_of(request.params.arguments.as_ref())
        {
            let arrival = Arc::new(self.gates.arrive(session));
            request.extensions_mut().insert(arrival);
        }
    }
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for Stamped<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        let mut message = self.inner.receive().await?;
        self.stamp(&mut message);
        Some(message)
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn arrivals(gates: &Arc<Gates>, session: &str, n: u64) -> Vec<Arc<Arrival>> {
        (0..n).map(|_| Arc::new(gates.arrive(session))).collect()
    }

    #[tokio::test]
    async fn turns_follow_arrival_even_when_tasks_start_in_reverse() {
        let gates = Arc::new(Gates::default());
        let arrivals = arrivals(&gates, "s", 20);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for arrival in arrivals.into_iter().rev() {
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                arrival.wait_turn().await;
                order.lock().unwrap().push(arrival.number);
                arrival.release();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
        assert_eq!(gates.len(), 0, "the idle gate is forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_and_early_released_arrivals_do_not_block_later_ones() {
        let gates = Arc::new(Gates::default());
        let mut arrivals = arrivals(&gates, "s", 4);
        let last = arrivals.pop().unwrap();
        let third = arrivals.pop().unwrap();
        // The third gives up before its turn; the second is dropped unreleased.
        third.release();
        drop(arrivals.pop());
        let mut waiting = tokio::spawn(async move { last.wait_turn().await });
        // Paused time: the timeout fires only once every task is idle, so the waiter has
        // provably parked on its turn.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), &mut waiting)
                .await
                .is_err(),
            "the first arrival still has its turn"
        );
        arrivals.pop().unwrap().release();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the last arrival got its turn")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_never_waits_for_another_sessions_turn() {
        let gates = Arc::new(Gates::default());
        let held = gates.arrive("a");
        let other = gates.arrive("b");
        tokio::time::timeout(Duration::from_secs(1), other.wait_turn())
            .await
            .expect("session b has its own turn while a holds its");
        let behind = gates.arrive("a");
        let mut waiting = tokio::spawn(async move { behind.wait_turn().await });
        assert!(
            tokio::time::timeout(Duration::from_secs(1), &mut waiting)
                .await
                .is_err(),
            "the second call on a waits for the first"
        );
        drop(held);
        waiting.await.unwrap();
        drop(other);
        assert_eq!(gates.len(), 0);
    }

    #[test]
    fn only_valid_session_values_get_a_gate() {
        let args = |v: Value| v.as_object().cloned();
        assert_eq!(session_of(None), Some("default"));
        assert_eq!(
            session_of(args(serde_json::json!({"session": null})).as_ref()),
            Some("default")
        );
        assert_eq!(
            session_of(args(serde_json::json!({"session": "x"})).as_ref()),
            Some("x")
        );
        assert_eq!(
            session_of(args(serde_json::json!({"session": 1})).as_ref()),
            None
        );
        let long = "s".repeat(MAX_SESSION_CHARS + 1);
        assert_eq!(
            session_of(args(serde_json::json!({"session": long})).as_ref()),
            None
        );
    }
}
