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
mod sockets;

use std::sync::{Arc, Mutex};

use async_graphql::{
    Data,
    futures_util::{SinkExt, Stream, StreamExt, stream},
    http::{WebSocket as GraphQLWebSocket, WebSocketProtocols, WsMessage},
};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::mpsc;

pub use self::sockets::OpenSockets;
use self::{
    frame::Frame,
    keepalive::{Beat, KeepAlive},
    limits::{Admission, Answer, Gate},
};
use super::HttpState;
use crate::{
    error::AppError,
    sync::lock,
    viewer::{ClientAddr, Credentials},
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
pub async fn serve(
    socket: WebSocket,
    protocol: WebSocketProtocols,
    state: HttpState,
    client: ClientAddr,
) {
    let (mut sink, mut incoming) = socket.split();
    let stopping = state.shutdown.stopping();
    tokio::pin!(stopping);
    let waited = tokio::select! {
        waited = tokio::time::timeout(state.websocket.init_timeout, first_message(&mut incoming)) => waited,
        () = &mut stopping => return close_with(&mut sink, close::GOING_AWAY, GOING_AWAY).await,
    };
    let first = match waited {
        Ok(Frame::Data(first)) => first,
        Ok(Frame::TooBig) => {
            return close_with(&mut sink, close::MESSAGE_TOO_BIG, "Message too big").await;
        }
        Ok(_) => return,
        Err(_) => {
            return close_with(
                &mut sink,
                close::INIT_TIMEOUT,
                "Connection initialisation timeout",
            )
            .await;
        }
    };
    let init: serde_json::Value = match serde_json::from_slice(&first) {
        Ok(init) => init,
        Err(_) => return close_with(&mut sink, close::BAD_REQUEST, "Invalid message").await,
    };
    if init.get("type").and_then(|kind| kind.as_str()) != Some("connection_init") {
        return close_with(&mut sink, close::UNAUTHORIZED, "Unauthorized").await;
    }
    let payload = init.get("payload").cloned().unwrap_or_default();
    let viewer = match state
        .services
        .auth
        .authenticator
        .from_connection_init(&payload)
        .await
    {
        Ok(viewer) => viewer,
        Err(AppError::Unavailable(detail)) => {
            tracing::warn!(%detail, "graphql-ws connection_init: database unavailable");
            let reason = "Try again later: the service is briefly unavailable";
            return close_with(&mut sink, close::TRY_AGAIN_LATER, reason).await;
        }
        Err(err) => {
            return close_with(&mut sink, close::FORBIDDEN, &format!("Forbidden: {err}")).await;
        }
    };
    if let Err(spent) = state.services.state.usage.open_socket(viewer.id) {
        let reason = format!("Try again later: {spent}");
        return close_with(&mut sink, close::TRY_AGAIN_LATER, &reason).await;
    }
    let Some(_slot) = state
        .sockets
        .open(viewer.id, state.websocket.max_sockets_per_user)
    else {
        return close_with(
            &mut sink,
            close::TRY_AGAIN_LATER,
            "Too many sockets for this user",
        )
        .await;
    };
    let until_expiry = (viewer.expires_at - state.services.state.clock.now())
        .to_std()
        .unwrap_or_default();
    let gate = Gate::new(
        protocol,
        &state.websocket,
        viewer.id,
        state.services.state.usage.clone(),
    );
    let gate = Arc::new(Mutex::new(gate));
    let mut connection_data = Data::default();
    connection_data.insert(Credentials::Authenticated(viewer));
    connection_data.insert(client);

    let (answer, mut answers) = mpsc::unbounded_channel();
    let frames = incoming.filter_map({
        let gate = gate.clone();
        move |message| {
            std::future::ready(match lock(&gate).admit(Frame::read(message)) {
                Admission::Pass(bytes) => Some(bytes),
                Admission::Drop => None,
                Admission::Answer(reply) => {
                    let _ = answer.send(reply);
                    None
                }
            })
        }
    });
    let messages = stream::once(std::future::ready(first)).chain(frames);
    let mut session = GraphQLWebSocket::new(state.schema.clone(), messages, protocol)
        .on_connection_init(move |_| async move { Ok(connection_data) });
    let mut keepalive = KeepAlive::new(protocol, state.websocket.keepalive);
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    let (code, reason) = loop {
        tokio::select! {
            outgoing = session.next() => match outgoing {
                Some(WsMessage::Text(text)) => {
                    lock(&gate).on_server_message(&text);
                    if !deliver(&mut sink, text).await {
                        return;
                    }
                }
                Some(WsMessage::Close(code, reason)) => break (code, reason),
                // A read error ends the protocol's input just after the gate said how to close.
                None => match pending_close(&mut answers) {
                    Some(close) => break close,
                    None => return,
                },
            },
            Some(reply) = answers.recv() => match reply {
                Answer::Refuse(text) => {
                    if !deliver(&mut sink, text).await {
                        return;
                    }
                }
                Answer::Close(code, reason) => break (code, reason),
            },
            () = keepalive.tick() => {
                let heard = lock(&gate).take_heard();
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
    lock(&gate).condemn();
    close_with(&mut sink, code, &reason).await;
    linger(&mut session).await;
}

/// The close the gate decided, if any, among the answers not yet sent.
fn pending_close(answers: &mut mpsc::UnboundedReceiver<Answer>) -> Option<(u16, String)> {
    while let Ok(reply) = answers.try_recv() {
        if let Answer::Close(code, reason) = reply {
            return Some((code, reason));
        }
    }
    None
}

/// Reads on after the close frame, until the client's own close ends the socket: a socket
/// dropped with unread data is reset, and a client can lose the close frame, and its code, to
/// the reset. The condemned gate drops what arrives meanwhile.
async fn linger<S: Stream + Unpin>(session: &mut S) {
    let drained = async { while session.next().await.is_some() {} };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drained).await;
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
async fn deliver<S>(sink: &mut S, text: String) -> bool
where
    S: SinkExt<Message> + Unpin,
{
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::info!("closing a websocket whose client stopped reading");
            close_with(sink, close::TRY_AGAIN_LATER, "Client stopped reading").await;
            false
        }
    }
}

async fn close_with<S>(sink: &mut S, code: u16, reason: &str)
where
    S: SinkExt<Message> + Unpin,
{
    // A close reason is limited to 123 bytes by the websocket protocol.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}
