//! Progress while code runs: when an `execute` request carries a `progressToken`, the call's
//! console lines and `mcp.progress(fraction, message)` reports go to the client as
//! `notifications/progress`, at most one per [`MIN_INTERVAL`].
//!
//! What arrives faster is merged: the latest fraction wins and the lines are joined, so a
//! client sees everything up to [`MAX_MESSAGE_BYTES`] per notification and a count of the
//! lines left out. `progress` is the percent done (`total` is 100) as the code last reported
//! it; the MCP spec requires each notification's `progress` to be greater than the last, so a
//! notification without a new fraction adds [`STEP`] (a thousandth of a percent).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcpk_session::{LogLevel, Progress, ProgressSink};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Shortest time between two notifications of one call.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest `message` of one notification, in bytes; the lines beyond are counted.
pub(crate) const MAX_MESSAGE_BYTES: usize = 1024;
/// Events waiting for the notifier; lines a call logs faster than they drain are counted in
/// the next notification's `… N more lines` instead (they stay in the call's logs).
const QUEUE_EVENTS: usize = 256;
/// How much a notification without a new fraction adds to `progress`, in percent.
const STEP: f64 = 0.001;
/// Longest wait for the last notification once the call has ended.
const FINISH_TIMEOUT: Duration = Duration::from_secs(1);

enum Event {
    Line(String),
    Report { fraction: f64, message: String },
    Finish,
}

/// Sends one call's progress notifications; [`Notifier::finish`] sends what is pending.
pub(crate) struct Notifier {
    events: mpsc::Sender<Event>,
    task: JoinHandle<()>,
}

impl Notifier {
    /// Starts notifying `peer` under `token`; the sink goes into the call.
    pub(crate) fn start(peer: Peer<RoleServer>, token: ProgressToken) -> (Self, ProgressSink) {
        let (events, queue) = mpsc::channel(QUEUE_EVENTS);
        let sender = events.clone();
        let dropped = Arc::new(AtomicUsize::new(0));
        let dropped_lines = dropped.clone();
        let sink: ProgressSink = Arc::new(move |event: Progress<'_>| {
            let event = match event {
                Progress::Log(entry) => Event::Line(match entry.level {
                    LogLevel::Log | LogLevel::Info => entry.message.clone(),
                    other => format!(
                        "{}: {}",
                        serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        entry.message
                    ),
                }),
                Progress::Report { fraction, message } => Event::Report {
                    fraction,
                    message: message.to_owned(),
                },
            };
            // Full: the event is dropped (a line is still counted), and the call goes on.
            if let Err(mpsc::error::TrySendError::Full(Event::Line(_))) = sender.try_send(event) {
                dropped_lines.fetch_add(1, Ordering::Relaxed);
            }
        });
        let task = tokio::spawn(run(peer, token, queue, dropped));
        (Self { events, task }, sink)
    }

    /// Sends what is still pending, then stops (waiting at most a second).
    pub(crate) async fn finish(self) {
        if self.events.send(Event::Finish).await.is_ok() {
            let _ = tokio::time::timeout(FINISH_TIMEOUT, self.task).await;
        }
    }
}

/// What the next notification says.
#[derive(Default)]
struct Pending {
    fraction: Option<f64>,
    message: String,
    lines_left_out: usize,
    any: bool,
}

impl Pending {
    /// Adds the lines the full queue dropped to those left out.
    fn count_dropped(&mut self, dropped: &AtomicUsize) {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            self.lines_left_out += lost;
            self.any = true;
        }
    }

    fn add_line(&mut self, line: &str) {
        self.any = true;
        let separator = usize::from(!self.message.is_empty());
        if self.lines_left_out > 0
            || self.message.len() + separator + line.len() > MAX_MESSAGE_BYTES
        {
            if self.message.is_empty() {
                self.message = cut(line, MAX_MESSAGE_BYTES).to_owned();
            } else {
                self.lines_left_out += 1;
            }
            return;
        }
        if separator == 1 {
            self.message.push('\n');
        }
        self.message.push_str(line);
    }

    fn text(&self) -> String {
        let more = match self.lines_left_out {
            0 => return self.message.clone(),
            1 => "… 1 more line".to_owned(),
            n => format!("… {n} more lines"),
        };
        if self.message.is_empty() {
            more
        } else {
            format!("{}\n{more}", self.message)
        }
    }
}

fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

async fn run(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    mut queue: mpsc::Receiver<Event>,
    dropped: Arc<AtomicUsize>,
) {
    let mut pending = Pending::default();
    let mut last_progress = 0.0_f64;
    let mut next_allowed = Instant::now();
    loop {
        let event = tokio::select! {
            event = queue.recv() => event,
            () = tokio::time::sleep_until(next_allowed), if pending.any => {
                last_progress = send(&peer, &token, std::mem::take(&mut pending), last_progress).await;
                next_allowed = Instant::now() + MIN_INTERVAL;
                continue;
            }
        };
        match event {
            Some(Event::Line(line)) => pending.add_line(&line),
            Some(Event::Report { fraction, message }) => {
                pending.fraction = Some(fraction);
                if !message.is_empty() {
                    pending.add_line(&message);
                }
                pending.any = true;
            }
            Some(Event::Finish) | None => {
                pending.count_dropped(&dropped);
                if pending.any {
                    send(&peer, &token, pending, last_progress).await;
                }
                return;
            }
        }
        pending.count_dropped(&dropped);
        if pending.any && Instant::now() >= next_allowed {
            last_progress = send(&peer, &token, std::mem::take(&mut pending), last_progress).await;
            next_allowed = Instant::now() + MIN_INTERVAL;
        }
    }
}

/// Sends one notification; returns its `progress`.
async fn send(peer: &Peer<RoleServer>, token: &ProgressToken, pending: Pending, last: f64) -> f64 {
    let reported = pending.fraction.map_or(0.0, |f| f * 100.0);
    let progress = if reported > last {
        reported
    } else {
        last + STEP
    };
    let mut param = ProgressNotificationParam::new(token.clone(), progress).with_total(100.0);
    let text = pending.text();
    if !text.is_empty() {
        param = param.with_message(text);
    }
    if let Err(error) = peer.notify_progress(param).await {
        tracing::debug!(%error, "sending a progress notification failed");
    }
    progress
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_joined_up_to_the_limit_and_the_rest_are_counted() {
        let mut pending = Pending::default();
        pending.add_line("first");
        pending.add_line("second");
        assert_eq!(pending.text(), "first\nsecond");
        pending.add_line(&"x".repeat(MAX_MESSAGE_BYTES));
        pending.add_line("fourth");
        assert_eq!(pending.text(), "first\nsecond\n… 2 more lines");
    }

    #[test]
    fn a_single_line_over_the_limit_is_cut_at_a_character_boundary() {
        let mut pending = Pending::default();
        pending.add_line(&"é".repeat(MAX_MESSAGE_BYTES));
        assert_eq!(pending.text().len(), MAX_MESSAGE_BYTES);
        assert!(pending.text().chars().all(|c| c == 'é'));
    }
}
