//! The fixture, made through the public API: users in pairs, each pair with an accepted
//! booking, an enabled chat and an opening message. Not counted in any figure.

use futures_util::{StreamExt, stream};
use serde_json::json;

use crate::api::{Error, Server};

/// One care recipient and one caregiver who can chat.
#[derive(Clone, Debug)]
pub struct Pair {
    pub session_id: String,
    /// Where `messageAdded` resumes: after the opening message, so that whatever order a
    /// socket's subscriptions start in, no message sent later can be missed.
    pub opening_cursor: String,
    pub recipient_token: String,
    pub caregiver_token: String,
}

/// Creates `count` pairs, a few at a time.
pub async fn pairs(server: &Server, count: usize) -> Result<Vec<Pair>, Error> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let made: Vec<Result<Pair, Error>> = stream::iter(0..count)
        .map(|index| pair(server, format!("{run}-{index}")))
        .buffer_unordered(16)
        .collect()
        .await;
    made.into_iter().collect()
}

async fn pair(server: &Server, tag: String) -> Result<Pair, Error> {
    let register =
        "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
    let mut users = Vec::new();
    for role in ["CARE_RECIPIENT", "CAREGIVER"] {
        let input = json!({ "email": format!("{}-{tag}@bench.example.com", role.to_lowercase()),
            "password": "bench password", "displayName": format!("{role} {tag}"), "role": role });
        let data = server
            .graphql(None, register, json!({ "input": input }))
            .await?;
        users.push((
            data["register"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            data["register"]["user"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    let (recipient_token, _) = users[0].clone();
    let (caregiver_token, caregiver_id) = users[1].clone();
    let starts = chrono::Utc::now() + chrono::Duration::days(1);
    let booking = server
        .graphql(
            Some(&recipient_token),
            "mutation($input: CreateBookingInput!) { createBooking(input: $input) { id } }",
            json!({ "input": { "caregiverId": caregiver_id, "startsAt": starts.to_rfc3339(),
                "endsAt": (starts + chrono::Duration::hours(1)).to_rfc3339() } }),
        )
        .await?;
    let booking_id = booking["createBooking"]["id"].clone();
    server
        .graphql(
            Some(&caregiver_token),
            "mutation($id: UUID!) { acceptBooking(id: $id) { id } }",
            json!({ "id": booking_id }),
        )
        .await?;
    let chat = server
        .graphql(
            Some(&recipient_token),
            "mutation($id: UUID!) { enableChat(bookingId: $id) { id } }",
            json!({ "id": booking_id }),
        )
        .await?;
    let session_id = chat["enableChat"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let opening = server
        .graphql(
            Some(&recipient_token),
            "mutation($input: SendMessageInput!) { sendMessage(input: $input) { cursor } }",
            json!({ "input": { "sessionId": session_id, "body": "opening",
                "clientMessageId": format!("opening-{tag}") } }),
        )
        .await?;
    Ok(Pair {
        session_id,
        opening_cursor: opening["sendMessage"]["cursor"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        recipient_token,
        caregiver_token,
    })
}
