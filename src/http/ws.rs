//! graphql-ws sessions, on both subprotocols, authenticated in `connection_init`.
//!
//! The handshake is handled here rather than by async-graphql so that a
//! refused token closes with 4403 on both subprotocols, a silent socket with
//! 4408, and a socket closes by itself when its token expires. The session
//! around async-graphql's protocol bounds what one client may cost: see
//! [`limits`] for each socket, [`sockets`] for each user, and [`keepalive`].

mod frame;
mod keepalive;
mod limits;
mod parking;
mod sockets;

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::{
    Data,
    futures_util::{
        SinkExt, Stream, StreamExt,
        future::BoxFuture,
        stream::{self, SplitSink, SplitStream},
    },
    http::{WebSocket as GraphQLWebSocket, WebSocketProtocols, WsMessage},
};
use axum::{
    body::Bytes,
    extract::ws::{CloseFrame, Message, WebSocket},
};
use tokio::sync::Notify;

pub use self::sockets::OpenSockets;
use self::{
    frame::Frame,
    keepalive::{Beat, KeepAlive},
    limits::{Admission, Answer, Gate},
    parking::Parking,
    sockets::SocketSlot,
};
use super::HttpState;
use crate::{
    error::AppError,
    sync::lock,
    viewer::{ClientAddr, Credentials, Viewer},
};

/// Close codes that this server sends itself, chosen for what clients do on each. A graphql-ws
/// client gives up on 4400, 4401, 4406, 4409, 4429, 4500 and on 1000 to 1999 except 1000, 1001,
/// 1005, 1006, 1012, 1013 and 1014; it retries any other code with backoff. Legacy
/// (subscriptions-transport-ws) clients reconnect after any close.
mod close {
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    /// A subscribe reused the id of a live subscription (graphql-transport-ws): a client bug.
    pub const SUBSCRIBER_ALREADY_EXISTS: u16 = 4409;
    /// A message over `WS_MAX_MESSAGE_BYTES` (RFC 6455): sending it again would not help.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// More messages than `WS_MESSAGES_PER_SECOND` allows (RFC 6455): a runaway client, which
    /// should not reconnect to repeat it.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// "Try again later" (RFC 6455): the client stopped reading, or its user already holds
    /// `WS_MAX_SOCKETS_PER_USER` sockets and a retry succeeds once one of them closes.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// "Timeout" (IANA registry): a graphql-transport-ws client left pings unanswered; retried.
    pub const TIMEOUT: u16 = 3008;
    /// "Going away" (RFC 6455): this instance is stopping; the client reconnects, through the
    /// load balancer, to one that is not.
    pub const GOING_AWAY: u16 = 1001;
}

/// A client that has not taken a message for this long is not coming back; its socket is
/// closed rather than holding a stalled session. Events it missed meanwhile are not queued
/// per socket: its streams fall behind the shared bus and catch up from the database.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The reason sent with [`close::GOING_AWAY`].
const GOING_AWAY: &str = "Going away: the server is stopping";

/// A close frame is a courtesy: a client that does not take it within this long is dropped.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs one websocket from the upgrade to its close.
///
/// The handshake is boxed so that the task of an idle socket holds only what its session
/// needs: a future is as large as its largest state, and the handshake's (the
/// `connection_init` message, the token's lookup) would otherwise stay reserved in every
/// socket for its life.
pub async fn serve(
    socket: WebSocket,
    protocol: WebSocketProtocols,
    state: HttpState,
    client: ClientAddr,
) {
    let (mut sink, mut incoming) = socket.split();
    let Some(admitted) = Box::pin(handshake(&mut sink, &mut incoming, &state)).await else {
        return;
    };
    session(sink, incoming, protocol, &state, client, admitted).await;
}

/// What the server sends on a socket.
type Sink = SplitSink<WebSocket, Message>;
/// What the client sends on a socket.
type Incoming = SplitStream<WebSocket>;

/// A socket whose `connection_init` was accepted.
struct Admitted {
    viewer: Viewer,
    /// The socket's place among its user's; given back when the session ends.
    slot: SocketSlot,
    /// The `connection_init` message, which the protocol reads first to acknowledge it.
    init: Bytes,
}

/// Reads `connection_init` and authenticates it, or closes the socket with the reason.
async fn handshake(
    sink: &mut Sink,
    incoming: &mut Incoming,
    state: &HttpState,
) -> Option<Admitted> {
    let stopping = state.shutdown.stopping();
    tokio::pin!(stopping);
    let waited = tokio::select! {
        waited = tokio::time::timeout(state.websocket.init_timeout, first_message(incoming)) => waited,
        () = &mut stopping => {
            close_with(sink, close::GOING_AWAY, GOING_AWAY).await;
            return None;
        }
    };
    let refusal = match waited {
        Ok(Frame::Data(init)) => match admit(init, state).await {
            Ok(admitted) => return Some(admitted),
            Err(refusal) => refusal,
        },
        Ok(Frame::TooBig) => (close::MESSAGE_TOO_BIG, "Message too big".to_owned()),
        Ok(_) => return None,
        Err(_) => (
            close::INIT_TIMEOUT,
            "Connection initialisation timeout".to_owned(),
        ),
    };
    close_with(sink, refusal.0, &refusal.1).await;
    None
}

/// Checks a `connection_init` message and the user's right to one more socket; the error is
/// the close code and reason to send.
async fn admit(init: Bytes, state: &HttpState) -> Result<Admitted, (u16, String)> {
    let message: serde_json::Value = serde_json::from_slice(&init)
        .map_err(|_| (close::BAD_REQUEST, "Invalid message".to_owned()))?;
    if message.get("type").and_then(|kind| kind.as_str()) != Some("connection_init") {
        return Err((close::UNAUTHORIZED, "Unauthorized".to_owned()));
    }
    let payload = message.get("payload").unwrap_or(&serde_json::Value::Null);
    let viewer = match state
        .services
        .auth
        .authenticator
        .from_connection_init(payload)
        .await
    {
        Ok(viewer) => viewer,
        Err(AppError::Unavailable(detail)) => {
            tracing::warn!(%detail, "graphql-ws connection_init: database unavailable");
            let reason = "Try again later: the service is briefly unavailable";
            return Err((close::TRY_AGAIN_LATER, reason.to_owned()));
        }
        Err(err) => return Err((close::FORBIDDEN, format!("Forbidden: {err}"))),
    };
    if let Err(spent) = state.services.state.usage.open_socket(viewer.id) {
        return Err((close::TRY_AGAIN_LATER, format!("Try again later: {spent}")));
    }
    let Some(slot) = state
        .sockets
        .open(viewer.id, state.websocket.max_sockets_per_user)
    else {
        let reason = "Too many sockets for this user";
        return Err((close::TRY_AGAIN_LATER, reason.to_owned()));
    };
    Ok(Admitted { viewer, slot, init })
}

/// What the session shares with the reading of its socket: the limits, and the replies the
/// limits chose for the session to send (rare, so kept where an idle socket pays nothing).
struct Shared {
    gate: Mutex<Gate>,
    replies: Mutex<VecDeque<Answer>>,
    replied: Notify,
}

impl Shared {
    fn reply(&self, answer: Answer) {
        lock(&self.replies).push_back(answer);
        self.replied.notify_one();
    }

    fn next_reply(&self) -> Option<Answer> {
        lock(&self.replies).pop_front()
    }

    /// The close the gate decided, if any, among the replies not yet sent.
    fn pending_close(&self) -> Option<(u16, String)> {
        while let Some(reply) = self.next_reply() {
            if let Answer::Close(code, reason) = reply {
                return Some((code, reason));
            }
        }
        None
    }
}

/// The graphql-ws protocol of an admitted socket, until it closes.
async fn session(
    mut sink: Sink,
    incoming: Incoming,
    protocol: WebSocketProtocols,
    state: &HttpState,
    client: ClientAddr,
    admitted: Admitted,
) {
    // The slot is held, unread, until the session ends.
    let Admitted {
        viewer,
        slot: _slot,
        init,
    } = admitted;
    let until_expiry = (viewer.expires_at - state.services.state.clock.now())
        .to_std()
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        gate: Mutex::new(Gate::new(
            protocol,
            &state.websocket,
            viewer.id,
            state.services.state.usage.clone(),
        )),
        replies: Mutex::default(),
        replied: Notify::new(),
    });
    let mut connection_data = Data::default();
    connection_data.insert(Credentials::Authenticated(viewer));
    connection_data.insert(client);

    let frames = incoming.filter_map({
        let shared = shared.clone();
        move |message| {
            let admission = lock(&shared.gate).admit(Frame::read(message));
            std::future::ready(match admission {
                Admission::Pass(bytes) => Some(bytes),
                Admission::Drop => None,
                Admission::Answer(reply) => {
                    shared.reply(reply);
                    None
                }
            })
        }
    });
    let messages = stream::once(std::future::ready(init)).chain(frames);
    let ticks = Arc::new(AtomicU64::new(0));
    let executor = Parking::new(state.schema.clone(), ticks.clone());
    let mut session = GraphQLWebSocket::new(executor, messages, protocol)
        .on_connection_init(move |_| async move { Ok(connection_data) });
    let mut keepalive = KeepAlive::new(protocol, state.websocket.keepalive);
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    let stopping = state.shutdown.stopping();
    tokio::pin!(stopping);
    let (code, reason) = loop {
        tokio::select! {
            outgoing = session.next() => match outgoing {
                Some(WsMessage::Text(text)) => {
                    lock(&shared.gate).on_server_message(&text);
                    if !deliver(&mut sink, text).await {
                        return;
                    }
                }
                Some(WsMessage::Close(code, reason)) => break (code, reason),
                // A read error ends the protocol's input just after the gate said how to close.
                None => match shared.pending_close() {
                    Some(close) => break close,
                    None => return,
                },
            },
            () = shared.replied.notified() => match send_replies(&mut sink, &shared).await {
                Replies::Sent => {}
                Replies::Close(code, reason) => break (code, reason),
                Replies::SocketDone => return,
            },
            () = keepalive.tick() => {
                // Counted for the subscriptions that park after waiting through two ticks; the
                // loop's next poll of the protocol is their chance to.
                ticks.fetch_add(1, Ordering::Relaxed);
                let heard = lock(&shared.gate).take_heard();
                match keepalive.beat(heard) {
                    Beat::Send(ping) => {
                        if !deliver(&mut sink, ping.to_owned()).await {
                            return;
                        }
                    }
                    Beat::Gone => break (close::TIMEOUT, "Timeout: pings unanswered".to_owned()),
                }
            }
            () = &mut expiry => break (close::FORBIDDEN, "Forbidden: token expired".to_owned()),
            () = &mut stopping => break (close::GOING_AWAY, GOING_AWAY.to_owned()),
        }
    };
    lock(&shared.gate).condemn();
    close_with(&mut sink, code, &reason).await;
    linger(&mut session).await;
}

/// How sending the gate's replies ended.
enum Replies {
    /// All sent; the socket stays open.
    Sent,
    /// The gate decided to close the socket with this code and reason.
    Close(u16, String),
    /// The socket failed while sending.
    SocketDone,
}

/// Sends the replies the gate queued, in order, up to a close.
async fn send_replies(sink: &mut Sink, shared: &Shared) -> Replies {
    while let Some(reply) = shared.next_reply() {
        match reply {
            Answer::Refuse(text) => {
                if !deliver(sink, text).await {
                    return Replies::SocketDone;
                }
            }
            Answer::Close(code, reason) => return Replies::Close(code, reason),
        }
    }
    Replies::Sent
}

/// Reads on after the close frame, until the client's own close ends the socket: a socket
/// dropped with unread data is reset, and a client can lose the close frame, and its code, to
/// the reset. The condemned gate drops what arrives meanwhile.
fn linger<S: Stream + Unpin + Send>(session: &mut S) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let drained = async { while session.next().await.is_some() {} };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, drained).await;
    })
}

/// The first text or binary message, past any control frames.
async fn first_message<S>(incoming: &mut S) -> Frame
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    while let Some(message) = incoming.next().await {
        match Frame::read(message) {
            Frame::Control => continue,
            frame => return frame,
        }
    }
    Frame::Ended
}

/// Sends one message; false when the socket is done, closed with 1013 if the client stopped
/// reading.
///
/// The sends below are boxed: a send's future (its timer, the message) is needed for an
/// instant, and awaited inline it would be reserved, for its whole life, in every idle
/// socket's session.
fn deliver(sink: &mut Sink, text: String) -> BoxFuture<'_, bool> {
    Box::pin(async move {
        match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::info!("closing a websocket whose client stopped reading");
                close_with(sink, close::TRY_AGAIN_LATER, "Client stopped reading").await;
                false
            }
        }
    })
}

fn close_with<'a>(sink: &'a mut Sink, code: u16, reason: &str) -> BoxFuture<'a, ()> {
    // A close reason is limited to 123 bytes by the websocket protocol.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    Box::pin(async move {
        let close = sink.send(Message::Close(Some(frame)));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    })
}
