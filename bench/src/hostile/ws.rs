//! Hostile websockets: subscription floods that churn, sockets that never initialise, and
//! oversized frames.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use super::{BACK_OFF, Intruder};
use crate::api::Socket;

/// Flooding sockets per hostile user, each holding and churning subscriptions.
pub const FLOODING_SOCKETS: usize = 4;
/// Sockets per hostile user that upgrade and then say nothing.
pub const SILENT_SOCKETS: usize = 8;
/// Subscriptions a flooding socket starts and keeps.
const HELD: usize = 100;
/// Subscriptions started and completed at once, per churn round.
const CHURN_BATCH: usize = 50;
/// Churn rounds before the socket sends an oversized frame and starts over.
const CHURN_ROUNDS: usize = 50;
const OVERSIZED_BYTES: usize = 2 * 1024 * 1024;
/// Upper bound on a loop's connections, beside the phase's end.
const MAX_CONNECTIONS: usize = 100_000;

const FLOOD: &str = "subscription flood";
const OVERSIZED: &str = "2 MB frame";
const SILENT: &str = "socket without connection_init";

/// What came from the server while waiting.
enum Heard {
    Text(Value),
    /// The server closed the socket (with this close code) or the connection ended.
    Closed(String),
    /// Nothing within the budget.
    Silence,
}

/// Upgrades, initialises, starts many subscriptions, churns more, sends an oversized frame,
/// and starts over when closed, until the phase ends.
pub async fn flood(intruder: Arc<Intruder>) {
    let mut sockets = Reconnects::new(&intruder, FLOOD);
    while let Some(mut socket) = sockets.next().await {
        if initialise(&intruder, &mut socket).await && churn(&intruder, &mut socket).await {
            oversized(&intruder, &mut socket).await;
        }
        let _ = tokio::time::timeout(intruder.budget(), socket.close(None)).await;
        tokio::time::sleep(BACK_OFF.min(intruder.budget())).await;
    }
}

/// Upgrades and waits, without `connection_init`, for the server to close; then again.
pub async fn silent(intruder: Arc<Intruder>) {
    let mut sockets = Reconnects::new(&intruder, SILENT);
    while let Some(mut socket) = sockets.next().await {
        let until_end = intruder
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        loop {
            match hear(&mut socket, until_end).await {
                Heard::Text(_) => intruder.record(SILENT, "a message", false).await,
                Heard::Closed(how) => {
                    intruder.record(SILENT, &how, true).await;
                    break;
                }
                Heard::Silence => {
                    intruder
                        .record(SILENT, "still open at the end", false)
                        .await;
                    break;
                }
            }
        }
    }
}

/// One socket after another for an attack, until the phase ends or `MAX_CONNECTIONS`;
/// refused or failed upgrades are counted and retried after a pause.
struct Reconnects<'a> {
    intruder: &'a Intruder,
    attack: &'static str,
    attempts: usize,
}

impl<'a> Reconnects<'a> {
    fn new(intruder: &'a Intruder, attack: &'static str) -> Self {
        Reconnects {
            intruder,
            attack,
            attempts: 0,
        }
    }

    async fn next(&mut self) -> Option<Socket> {
        while self.intruder.running() && self.attempts < MAX_CONNECTIONS {
            self.attempts += 1;
            let upgrade = self.intruder.server.upgrade();
            let outcome = match tokio::time::timeout(self.intruder.budget(), upgrade).await {
                Ok(Ok(socket)) => return Some(socket),
                Ok(Err(tungstenite::Error::Http(response))) => {
                    format!("upgrade refused: HTTP {}", response.status().as_u16())
                }
                Ok(Err(_)) => "upgrade failed".to_owned(),
                Err(_) => "no upgrade within the client's timeout".to_owned(),
            };
            self.intruder.record(self.attack, &outcome, true).await;
        }
        None
    }
}

/// Sends `connection_init` with the intruder's token; true once acknowledged.
async fn initialise(intruder: &Intruder, socket: &mut Socket) -> bool {
    let init = json!({ "type": "connection_init", "payload": { "token": intruder.token } });
    if !send(intruder, socket, FLOOD, init.to_string()).await {
        return false;
    }
    loop {
        match hear(socket, intruder.budget()).await {
            Heard::Text(message) if message["type"] == "connection_ack" => {
                intruder.record(FLOOD, "connection_ack", false).await;
                return true;
            }
            Heard::Text(message) => record_message(intruder, FLOOD, &message).await,
            Heard::Closed(how) => {
                intruder.record(FLOOD, &how, true).await;
                return false;
            }
            Heard::Silence => {
                intruder.record(FLOOD, "no connection_ack", false).await;
                return false;
            }
        }
    }
}

/// Starts `HELD` subscriptions, then rounds of `CHURN_BATCH` subscribes and completes, each
/// round closed by a ping whose pong paces the next; true while the socket is open.
async fn churn(intruder: &Intruder, socket: &mut Socket) -> bool {
    let held: Vec<String> = (0..HELD)
        .map(|index| subscribe(intruder, &format!("h{index}"), index))
        .collect();
    if !send_all(intruder, socket, held).await {
        return false;
    }
    intruder.outcomes.add(FLOOD, "subscribe sent", HELD as u64);
    for round in 0..CHURN_ROUNDS {
        if !intruder.running() {
            return false;
        }
        let ids: Vec<String> = (0..CHURN_BATCH)
            .map(|index| format!("c{round}-{index}"))
            .collect();
        let mut frames: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| subscribe(intruder, id, index))
            .collect();
        frames.extend(
            ids.iter()
                .map(|id| json!({ "id": id, "type": "complete" }).to_string()),
        );
        frames.push(json!({ "type": "ping" }).to_string());
        if !send_all(intruder, socket, frames).await {
            return false;
        }
        intruder
            .outcomes
            .add(FLOOD, "subscribe sent", CHURN_BATCH as u64);
        if !until_pong(intruder, socket).await {
            return false;
        }
    }
    true
}

/// A subscribe message for the intruder's own chat or badge, by `index`.
fn subscribe(intruder: &Intruder, id: &str, index: usize) -> String {
    let session = &intruder.session_id;
    let (query, variables) = match index % 3 {
        0 => (
            "subscription($id: UUID!) { typing(sessionId: $id) { typing } }",
            json!({ "id": session }),
        ),
        1 => (
            "subscription($id: UUID!) { messageAdded(sessionId: $id) { seq } }",
            json!({ "id": session }),
        ),
        _ => ("subscription { unreadNotificationCount }", json!({})),
    };
    json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })
        .to_string()
}

/// Reads and counts what arrives until the pong; false if the socket closed or went silent.
async fn until_pong(intruder: &Intruder, socket: &mut Socket) -> bool {
    loop {
        match hear(socket, intruder.budget()).await {
            Heard::Text(message) if message["type"] == "pong" => return true,
            Heard::Text(message) => record_message(intruder, FLOOD, &message).await,
            Heard::Closed(how) => {
                intruder.record(FLOOD, &how, true).await;
                return false;
            }
            Heard::Silence => {
                intruder
                    .record(FLOOD, "no pong within the client's timeout", false)
                    .await;
                return false;
            }
        }
    }
}

/// A subscribe of 2 MB (a comment pads it: only a frame size limit stops it), then what the
/// server does about it.
async fn oversized(intruder: &Intruder, socket: &mut Socket) {
    let query = format!(
        "subscription {{ unreadNotificationCount }}\n#{}",
        "x".repeat(OVERSIZED_BYTES)
    );
    let frame = json!({ "id": "big", "type": "subscribe", "payload": { "query": query } });
    if !send(intruder, socket, OVERSIZED, frame.to_string()).await {
        return;
    }
    loop {
        match hear(socket, intruder.budget()).await {
            Heard::Text(message) if message["id"] == "big" => {
                return record_message(intruder, OVERSIZED, &message).await;
            }
            Heard::Text(_) => continue,
            Heard::Closed(how) => return intruder.record(OVERSIZED, &how, true).await,
            Heard::Silence => {
                return intruder
                    .record(OVERSIZED, "no answer within the client's timeout", false)
                    .await;
            }
        }
    }
}

/// Counts a server message by its type and first error code.
async fn record_message(intruder: &Intruder, attack: &str, message: &Value) {
    let kind = message["type"].as_str().unwrap_or("message without type");
    let errors = match kind {
        "error" => message["payload"].as_array(),
        _ => message["payload"]["errors"].as_array(),
    };
    let outcome = match errors.and_then(|errors| errors.first()) {
        Some(error) => format!(
            "{kind} {}",
            error["extensions"]["code"].as_str().unwrap_or("no code")
        ),
        None => kind.to_owned(),
    };
    let rate_limited = outcome.ends_with("RATE_LIMITED");
    intruder.record(attack, &outcome, rate_limited).await;
}

/// Sends frames in one flush; false (counted) if the socket is gone.
async fn send_all(intruder: &Intruder, socket: &mut Socket, frames: Vec<String>) -> bool {
    let written = async {
        for frame in frames {
            socket.feed(Message::Text(frame.into())).await?;
        }
        socket.flush().await
    };
    sent(
        intruder,
        FLOOD,
        tokio::time::timeout(intruder.budget(), written).await,
    )
    .await
}

async fn send(intruder: &Intruder, socket: &mut Socket, attack: &str, frame: String) -> bool {
    let written = socket.send(Message::Text(frame.into()));
    sent(
        intruder,
        attack,
        tokio::time::timeout(intruder.budget(), written).await,
    )
    .await
}

/// Whether a send went out; counts why not.
async fn sent(
    intruder: &Intruder,
    attack: &str,
    outcome: Result<Result<(), tungstenite::Error>, tokio::time::error::Elapsed>,
) -> bool {
    let failure = match outcome {
        Ok(Ok(())) => return true,
        Ok(Err(_)) => ("send failed: socket closed", true),
        Err(_) => ("send blocked past the client's timeout", false),
    };
    intruder.record(attack, failure.0, failure.1).await;
    false
}

/// The next text message, close, or nothing within `budget`.
async fn hear(socket: &mut Socket, budget: std::time::Duration) -> Heard {
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Heard::Silence,
            Ok(Some(Ok(Message::Text(text)))) => {
                return Heard::Text(serde_json::from_str(&text).unwrap_or_default());
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Heard::Closed(match frame {
                    Some(frame) => format!("close {}", u16::from(frame.code)),
                    None => "close without code".to_owned(),
                });
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(err))) => {
                return Heard::Closed(format!("connection ended: {}", error_kind(&err)));
            }
            Ok(None) => return Heard::Closed("connection ended".to_owned()),
        }
    }
}

fn error_kind(err: &tungstenite::Error) -> &'static str {
    match err {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => "closed",
        tungstenite::Error::Io(_) => "reset",
        tungstenite::Error::Protocol(_) => "protocol error",
        tungstenite::Error::Capacity(_) => "too large",
        _ => "other error",
    }
}
