//! Per-socket limits on what a client sends, checked as the protocol reads each message: the
//! size of a message, the rate of messages, the number of live subscriptions, and unique ids.
//!
//! The live ids are kept in step with the protocol's own: added when it reads a subscribe,
//! removed when it reads the client's complete, and removed when it sends a complete or an
//! error for that id. Deciding as the protocol reads (not as the socket delivers) keeps that
//! order exact when a client completes an id and reuses it at once.

use std::{collections::HashSet, sync::Arc};

use async_graphql::http::WebSocketProtocols;
use axum::body::Bytes;
use serde::Deserialize;
use tokio::time::Instant;

use super::{close, frame::Frame};
use uuid::Uuid;

use crate::{config::WebSocketConfig, error::AppError, rate_limit::UsageLimits};

/// What becomes of one read from the client.
pub enum Admission {
    /// The protocol reads it.
    Pass(Bytes),
    /// Nothing for the protocol: a control frame, or anything after the socket was condemned.
    Drop,
    /// The session must answer instead of the protocol.
    Answer(Answer),
}

/// A reply the session sends itself.
pub enum Answer {
    /// An `error` message that ends one operation; the socket stays open.
    Refuse(String),
    /// The socket is closed with this code and reason.
    Close(u16, String),
}

/// The limits of one socket.
pub struct Gate {
    protocol: WebSocketProtocols,
    user: Uuid,
    usage: Arc<UsageLimits>,
    rate: MessageRate,
    live: HashSet<String>,
    max_live: usize,
    heard: bool,
    condemned: bool,
}

/// The fields of a graphql-ws message that the limits look at; the protocol reads the rest.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

impl Gate {
    /// The limits of a socket of `user`, whose operations count against `usage`.
    pub fn new(
        protocol: WebSocketProtocols,
        config: &WebSocketConfig,
        user: Uuid,
        usage: Arc<UsageLimits>,
    ) -> Self {
        Self {
            protocol,
            user,
            usage,
            rate: MessageRate::new(config.messages_per_second, config.message_burst),
            live: HashSet::new(),
            max_live: config.max_subscriptions_per_socket,
            heard: false,
            condemned: false,
        }
    }

    /// Decides what happens to one read from the client.
    pub fn admit(&mut self, frame: Frame) -> Admission {
        if self.condemned {
            return Admission::Drop;
        }
        self.heard = true;
        let bytes = match frame {
            Frame::TooBig => return self.close(close::MESSAGE_TOO_BIG, "Message too big".into()),
            _ if !self.rate.take(Instant::now()) => {
                return self.close(close::POLICY_VIOLATION, "Too many messages".into());
            }
            Frame::Data(bytes) => bytes,
            Frame::Control | Frame::Ended => return Admission::Drop,
        };
        // A message that is not graphql-ws JSON is the protocol's to answer.
        let Ok(Envelope { kind, id: Some(id) }) = serde_json::from_slice(&bytes) else {
            return Admission::Pass(bytes);
        };
        match kind.as_str() {
            "subscribe" | "start" => self.subscribe(id, bytes),
            "complete" | "stop" => {
                self.live.remove(&id);
                Admission::Pass(bytes)
            }
            _ => Admission::Pass(bytes),
        }
    }

    /// Notes an operation that the server ended; `message` is what the protocol sends.
    pub fn on_server_message(&mut self, message: &str) {
        // Only these messages end an operation, and serde writes the tag first: every other
        // message, results above all, is passed over without parsing.
        let ends = message.starts_with(r#"{"type":"complete""#)
            || message.starts_with(r#"{"type":"error""#);
        if !ends {
            return;
        }
        if let Ok(Envelope { id: Some(id), .. }) = serde_json::from_str(message) {
            self.live.remove(&id);
        }
    }

    /// Whether the client sent anything since the last call.
    pub fn take_heard(&mut self) -> bool {
        std::mem::take(&mut self.heard)
    }

    fn subscribe(&mut self, id: String, bytes: Bytes) -> Admission {
        if self.live.contains(&id) {
            return match self.protocol {
                WebSocketProtocols::GraphQLWS => self.close(
                    close::SUBSCRIBER_ALREADY_EXISTS,
                    format!("Subscriber for {id} already exists"),
                ),
                // The legacy protocol's reference server stops the old operation and starts
                // the new one under the same id; the protocol replaces it likewise.
                WebSocketProtocols::SubscriptionsTransportWS => Admission::Pass(bytes),
            };
        }
        if self.live.len() >= self.max_live {
            let full = AppError::limit(
                "TOO_MANY_SUBSCRIPTIONS",
                format!(
                    "at most {} subscriptions may be live on one socket",
                    self.max_live
                ),
            );
            return Admission::Answer(Answer::Refuse(self.refusal(&id, &full)));
        }
        if let Err(spent) = self.usage.start_operation(self.user) {
            return Admission::Answer(Answer::Refuse(self.refusal(&id, &spent)));
        }
        self.live.insert(id);
        Admission::Pass(bytes)
    }

    /// The `error` message refusing to start operation `id`, in the shape of the protocol.
    fn refusal(&self, id: &str, why: &AppError) -> String {
        let error = why.to_graphql_error();
        let payload = match self.protocol {
            WebSocketProtocols::GraphQLWS => serde_json::json!([error]),
            WebSocketProtocols::SubscriptionsTransportWS => error,
        };
        serde_json::json!({ "id": id, "type": "error", "payload": payload }).to_string()
    }

    /// Drops everything the client sends from now on: the socket is closing.
    pub fn condemn(&mut self) {
        self.condemned = true;
    }

    fn close(&mut self, code: u16, reason: String) -> Admission {
        self.condemn();
        Admission::Answer(Answer::Close(code, reason))
    }
}

/// A token bucket: `burst` messages at once, refilled at `per_second`.
struct MessageRate {
    tokens: f64,
    burst: f64,
    per_second: f64,
    refilled_at: Instant,
}

impl MessageRate {
    fn new(per_second: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            refilled_at: Instant::now(),
        }
    }

    /// Spends one token, or says there is none left.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.refilled_at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}
