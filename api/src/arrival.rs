//! Arrival order of tool calls.
//!
//! Calls on one session must run in the order they arrived. rmcp reads requests one at a time,
//! but runs each on its own task, and tasks can start in any order; two `execute` calls sent
//! back to back could reach the session's FIFO queue swapped.
//!
//! So the transport stamps each `tools/call` request with its arrival number as it is read
//! ([`Stamped`]), and each call waits for its turn ([`Arrival::wait_turn`]) before it joins
//! the session's queue, then lets the next call go ([`Arrival::release`]). Only that hand-over
//! is ordered; the calls themselves still run concurrently.
//!
//! A request that never reaches the handler (rmcp rejected it) or that fails before joining a
//! queue (bad arguments) gives up its turn when its stamp is dropped, so it never holds up the
//! calls behind it.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::model::{ClientRequest, GetExtensions as _, JsonRpcMessage, JsonRpcRequest};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::Notify;

/// Hands turns out in arrival order.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    turn: Notify,
}

#[derive(Debug, Default)]
struct GateState {
    /// The arrival number whose turn it is.
    next: u64,
    /// Later arrivals that gave up their turn before it came.
    released_early: BTreeSet<u64>,
}

impl Gate {
    fn is_turn_of(&self, number: u64) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).next == number
    }

    fn release(&self, number: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.next != number {
            state.released_early.insert(number);
            return;
        }
        state.next += 1;
        loop {
            let next = state.next;
            if !state.released_early.remove(&next) {
                break;
            }
            state.next += 1;
        }
        drop(state);
        self.turn.notify_waiters();
    }
}

/// The arrival stamp of one `tools/call` request, carried in its extensions.
///
/// Dropping the last clone gives up the turn if [`Arrival::release`] was not called.
#[derive(Debug)]
pub(crate) struct Arrival {
    number: u64,
    gate: Arc<Gate>,
    released: AtomicBool,
}

impl Arrival {
    /// Waits until every call that arrived earlier has joined its session's queue or given up.
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

    /// Lets the next arrival go. Idempotent.
    pub(crate) fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.gate.release(self.number);
        }
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.release();
    }
}

/// A server transport that stamps each `tools/call` request with an [`Arrival`] as it is read.
#[derive(Debug)]
pub(crate) struct Stamped<T> {
    inner: T,
    gate: Arc<Gate>,
    next: u64,
}

impl<T> Stamped<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            gate: Arc::default(),
            next: 0,
        }
    }

    fn stamp(&mut self, message: &mut RxJsonRpcMessage<RoleServer>) {
        if let JsonRpcMessage::Request(JsonRpcRequest {
            request: request @ ClientRequest::CallToolRequest(_),
            ..
        }) = message
        {
            let arrival = Arc::new(Arrival {
                number: self.next,
                gate: self.gate.clone(),
                released: AtomicBool::new(false),
            });
            self.next += 1;
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

    fn arrivals(n: u64) -> Vec<Arc<Arrival>> {
        let gate = Arc::new(Gate::default());
        (0..n)
            .map(|number| {
                Arc::new(Arrival {
                    number,
                    gate: gate.clone(),
                    released: AtomicBool::new(false),
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn turns_follow_arrival_even_when_tasks_start_in_reverse() {
        let arrivals = arrivals(20);
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
    }

    #[tokio::test]
    async fn dropped_and_early_released_arrivals_do_not_block_later_ones() {
        let mut arrivals = arrivals(4);
        let last = arrivals.pop().unwrap();
        let third = arrivals.pop().unwrap();
        // The third gives up before its turn; the second is dropped unreleased.
        third.release();
        drop(arrivals.pop());
        let waiting = tokio::spawn(async move { last.wait_turn().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "the first arrival still has its turn"
        );
        arrivals.pop().unwrap().release();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the last arrival got its turn")
            .unwrap();
    }
}
