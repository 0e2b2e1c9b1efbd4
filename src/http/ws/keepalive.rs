//! Server keep-alive: a message every interval so that proxies keep an idle socket open and
//! clients know the server is there, and, where clients answer, the end of a silent socket.

use std::time::Duration;

use async_graphql::http::WebSocketProtocols;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Pings a graphql-transport-ws client may leave unanswered before its socket is taken for
/// dead: a peer that vanished without closing otherwise holds its socket (and a place among
/// its user's sockets) until TCP gives up, which takes minutes.
const UNANSWERED_PINGS: u32 = 3;

/// The keep-alive of one socket.
pub struct KeepAlive {
    ticks: Interval,
    protocol: WebSocketProtocols,
    pinged: bool,
    unanswered: u32,
}

/// What the session does at a tick.
pub enum Beat {
    /// Send this message.
    Send(&'static str),
    /// The client stopped answering: close the socket.
    Gone,
}

impl KeepAlive {
    pub fn new(protocol: WebSocketProtocols, every: Duration) -> Self {
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            ticks,
            protocol,
            pinged: false,
            unanswered: 0,
        }
    }

    /// Waits for the next tick.
    pub async fn tick(&mut self) {
        self.ticks.tick().await;
    }

    /// What to do at this tick; `heard` says whether the client sent anything since the last.
    pub fn beat(&mut self, heard: bool) -> Beat {
        match self.protocol {
            // The legacy protocol has no answer to `ka`: its clients close the socket themselves
            // when the messages stop, and the server relies on its send timeout.
            WebSocketProtocols::SubscriptionsTransportWS => Beat::Send(r#"{"type":"ka"}"#),
            WebSocketProtocols::GraphQLWS => {
                if heard {
                    self.unanswered = 0;
                } else if self.pinged {
                    self.unanswered += 1;
                }
                if self.unanswered >= UNANSWERED_PINGS {
                    return Beat::Gone;
                }
                self.pinged = true;
                Beat::Send(r#"{"type":"ping"}"#)
            }
        }
    }
}
