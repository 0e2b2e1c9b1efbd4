//! Profiles, availability, the caregiver directory, and who may see whom.

use serde_json::json;

use crate::helpers::{TestApp, error_code, node_fields};

const CAREGIVERS: &str = "query($availability: Availability, $first: Int, $after: String) {
    caregivers(availability: $availability, first: $first, after: $after) {
        edges { cursor node { id displayName caregiverProfile { availability bio hourlyRateCents } } }
        pageInfo { hasNextPage endCursor } } }";

#[tokio::test]
async fn caregivers_update_their_profile_and_availability() {
    let app = TestApp::spawn().await;
    let caregiver = app.register("CAREGIVER", "Gil").await;
    let updated = app
        .ok(
            &caregiver,
            r#"mutation { updateProfile(input: {displayName: "Gil Costa", timezone: "Europe/Lisbon",
                bio: "Night shifts", hourlyRateCents: 2500})
                { displayName timezone caregiverProfile { bio hourlyRateCents } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(updated["updateProfile"]["displayName"], "Gil Costa");
    assert_eq!(
        updated["updateProfile"]["caregiverProfile"]["hourlyRateCents"],
        2500
    );
    let cleared = app
        .ok(&caregiver, "mutation { updateProfile(input: {hourlyRateCents: null}) { caregiverProfile { bio hourlyRateCents } } }", json!({}))
        .await;
    assert_eq!(
        cleared["updateProfile"]["caregiverProfile"]["hourlyRateCents"],
        json!(null)
    );
    assert_eq!(
        cleared["updateProfile"]["caregiverProfile"]["bio"],
        "Night shifts"
    );

    let available = app
        .ok(&caregiver, "mutation { setAvailability(availability: AVAILABLE) { caregiverProfile { availability } } }", json!({}))
        .await;
    assert_eq!(
        available["setAvailability"]["caregiverProfile"]["availability"],
        "AVAILABLE"
    );

    for (input, field) in [
        (json!({ "timezone": "Nowhere/City" }), "timezone"),
        (json!({ "hourlyRateCents": -1 }), "hourlyRateCents"),
        (json!({ "displayName": "" }), "displayName"),
    ] {
        let response = app
            .graphql(
                Some(&caregiver.token),
                "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { id } }",
                json!({ "input": input }),
            )
            .await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{response}");
        assert_eq!(response["errors"][0]["extensions"]["field"], field);
    }
}

#[tokio::test]
async fn care_recipients_have_no_availability_or_caregiver_fields() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Hana").await;
    let code = app
        .code(
            &recipient,
            "mutation { setAvailability(availability: BUSY) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let code = app
        .code(
            &recipient,
            r#"mutation { updateProfile(input: {bio: "x"}) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn the_caregiver_directory_pages_and_filters() {
    let app = TestApp::spawn().await;
    let viewer = app.register("CARE_RECIPIENT", "Ivo").await;
    let mut available = Vec::new();
    for index in 0..5 {
        let caregiver = app.register("CAREGIVER", &format!("Carer {index}")).await;
        if index % 2 == 0 {
            app.ok(
                &caregiver,
                "mutation { setAvailability(availability: AVAILABLE) { id } }",
                json!({}),
            )
            .await;
            available.push(caregiver.id.clone());
        }
    }
    let seen: Vec<String> = app
        .pages(&viewer, CAREGIVERS, "caregivers", 2)
        .await
        .iter()
        .flatten()
        .map(|caregiver| caregiver["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        seen.len(),
        5,
        "every caregiver once, the care recipient never"
    );
    let filtered = app
        .ok(&viewer, CAREGIVERS, json!({ "availability": "AVAILABLE" }))
        .await;
    let ids: Vec<_> = node_fields(&filtered["caregivers"], "id")
        .into_iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, available);

    assert_eq!(
        app.code(&viewer, CAREGIVERS, json!({ "first": 101 })).await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.code(&viewer, CAREGIVERS, json!({ "first": -1 })).await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.code(&viewer, CAREGIVERS, json!({ "after": "not-a-cursor" }))
            .await,
        "BAD_USER_INPUT"
    );
}

#[tokio::test]
async fn users_see_caregivers_and_their_counterparts_only() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Joana").await;
    let caregiver = app.register("CAREGIVER", "Kim").await;
    let stranger = app.register("CARE_RECIPIENT", "Lee").await;
    let user = "query($id: UUID!) { user(id: $id) { id email displayName } }";

    let seen = app.ok(&stranger, user, json!({ "id": caregiver.id })).await;
    assert_eq!(seen["user"]["displayName"], "Kim");
    assert_eq!(seen["user"]["email"], json!(null), "emails are private");
    assert_eq!(
        app.code(&stranger, user, json!({ "id": recipient.id }))
            .await,
        "NOT_FOUND"
    );
    assert_eq!(
        app.code(&caregiver, user, json!({ "id": recipient.id }))
            .await,
        "NOT_FOUND"
    );

    app.book(&recipient, &caregiver, 24).await;
    let seen = app
        .ok(&caregiver, user, json!({ "id": recipient.id }))
        .await;
    assert_eq!(seen["user"]["displayName"], "Joana");
    assert_eq!(seen["user"]["email"], json!(null));
    assert_eq!(
        app.code(&stranger, user, json!({ "id": recipient.id }))
            .await,
        "NOT_FOUND"
    );
    let own = app
        .ok(&recipient, user, json!({ "id": recipient.id }))
        .await;
    assert!(own["user"]["email"].as_str().unwrap().starts_with("joana-"));
}

/// Each distinct query text is parsed once per instance, and every request that sends it
/// still gets its own operation, variables, viewer and validation.
#[tokio::test]
async fn a_repeated_query_text_is_answered_per_request() {
    let app = TestApp::spawn().await;
    let ana = app.register("CARE_RECIPIENT", "Ana").await;
    let bo = app.register("CAREGIVER", "Bo").await;
    let document = "query Name { me { displayName } } query Mail { me { email } }";
    for _ in 0..2 {
        let name = app
            .post(
                Some(&ana.token),
                json!({ "query": document, "operationName": "Name" }),
            )
            .await;
        assert_eq!(
            name["data"]["me"],
            json!({ "displayName": "Ana" }),
            "{name}"
        );
        let mail = app
            .post(
                Some(&bo.token),
                json!({ "query": document, "operationName": "Mail" }),
            )
            .await;
        assert!(
            mail["data"]["me"]["email"]
                .as_str()
                .is_some_and(|email| email.starts_with("bo-")),
            "{mail}"
        );
    }

    let unclosed = "query { me { displayName }";
    let user = "query($id: UUID!) { user(id: $id) { displayName } }";
    for _ in 0..2 {
        assert_eq!(app.code(&ana, unclosed, json!({})).await, "BAD_USER_INPUT");
        assert_eq!(app.code(&ana, user, json!({})).await, "BAD_USER_INPUT");
    }
    let me = app.ok(&ana, user, json!({ "id": ana.id })).await;
    assert_eq!(me["user"]["displayName"], "Ana");
}
