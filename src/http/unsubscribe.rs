//! `/unsubscribe`: the link at the foot of every email. `GET` shows a page with one button
//! (mail scanners follow links, so a `GET` changes nothing); `POST`, from that button or a
//! mail client's one-click unsubscribe (RFC 8058), turns the type's email off.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;

use super::HttpState;
use crate::delivery::Delivery;

/// The link's query: the signed token.
#[derive(Deserialize)]
pub struct Link {
    #[serde(default)]
    token: String,
}

/// The page that asks before unsubscribing.
pub async fn confirm(State(state): State<HttpState>, Query(link): Query<Link>) -> Response {
    let delivery: &Delivery = &state.services.delivery;
    match delivery.unsubscribe.read(&link.token) {
        Ok(_) => page(
            StatusCode::OK,
            "Stop these emails?",
            &format!(
                "<form method=\"post\" action=\"/unsubscribe?token={}\">\
                 <button type=\"submit\">Unsubscribe</button></form>",
                link.token
            ),
        ),
        Err(_) => invalid(),
    }
}

/// Turns the type's email off.
pub async fn apply(State(state): State<HttpState>, Query(link): Query<Link>) -> Response {
    let delivery = state.services.delivery.clone();
    if delivery.unsubscribe.read(&link.token).is_err() {
        return invalid();
    }
    let applied = state
        .services
        .state
        .writer
        .run(async |write| delivery.unsubscribe.apply(write, &link.token).await)
        .await;
    match applied {
        Ok(_) => page(
            StatusCode::OK,
            "You are unsubscribed",
            "<p>You will no longer get these emails. You can turn them back on in the app's \
             notification settings.</p>",
        ),
        Err(err) => {
            tracing::warn!(error = %err, "unsubscribing");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>We could not unsubscribe you just now. Please try the link again in a minute.</p>",
            )
        }
    }
}

fn invalid() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This link is not valid",
        "<p>The unsubscribe link is incomplete or was changed. Use the link in the email, or \
         change your email settings in the app.</p>",
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1>{body}</body></html>"
        )),
    )
        .into_response()
}
