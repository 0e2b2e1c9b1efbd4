//! graphql-ws sessions, on both subprotocols, authenticated in `connection_init`.
//!
//! The handshake is handled here rather than by async-graphql so that a
//! refused token closes with 4403 on both subprotocols, a silent socket with
//! 4408, and a socket closes by itself when its token expires.

use async_graphql::{
    Data,
    futures_util::{SinkExt, StreamExt, stream},
    http::{WebSocket as GraphQLWebSocket, WebSocketProtocols, WsMessage},
};
use axum::extract::ws::{CloseFrame, Message, WebSocket};

use super::HttpState;
use crate::auth::Credentials;

/// Close codes of the graphql-ws protocol that this server sends itself.
mod close {
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    /// The client stopped reading: "try again later" (RFC 6455).
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// A client that has not taken a message for this long is not coming back; its socket is
/// closed rather than holding a stalled session. Events it missed meanwhile are not queued
/// per socket: its streams fall behind the shared bus and catch up from the database.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one websocket from the upgrade to its close.
pub async fn serve(socket: WebSocket, protocol: WebSocketProtocols, state: HttpState) {
    let (mut sink, incoming) = socket.split();
    let mut frames = incoming.filter_map(|message| {
        std::future::ready(match message {
            Ok(Message::Text(text)) => Some(text.as_str().as_bytes().to_vec()),
            Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
            _ => None,
        })
    });

    let first = match tokio::time::timeout(state.websocket.init_timeout, frames.next()).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return,
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
    let viewer = match state.app.authenticator.from_connection_init(&payload).await {
        Ok(viewer) => viewer,
        Err(err) => {
            return close_with(&mut sink, close::FORBIDDEN, &format!("Forbidden: {err}")).await;
        }
    };
    let until_expiry = (viewer.expires_at - state.app.clock.now())
        .to_std()
        .unwrap_or_default();
    let mut connection_data = Data::default();
    connection_data.insert(Credentials::Authenticated(viewer));

    let messages = stream::once(std::future::ready(first)).chain(frames);
    let mut session = GraphQLWebSocket::new(state.schema.clone(), messages, protocol)
        .on_connection_init(move |_| async move { Ok(connection_data) });
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            outgoing = session.next() => match outgoing {
                Some(WsMessage::Text(text)) => {
                    match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return,
                        Err(_) => {
                            tracing::info!("closing a websocket whose client stopped reading");
                            let closing = close_with(&mut sink, close::TRY_AGAIN_LATER, "Client stopped reading");
                            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), closing).await;
                            return;
                        }
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    return close_with(&mut sink, code, &reason).await;
                }
                None => return,
            },
            () = &mut expiry => {
                return close_with(&mut sink, close::FORBIDDEN, "Forbidden: token expired").await;
            }
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
    let _ = sink.send(Message::Close(Some(frame))).await;
}
