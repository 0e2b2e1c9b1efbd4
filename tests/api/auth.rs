//! Accounts and tokens: register, login, every token fault, Supabase tokens, production safety.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use caregraph::{config::Environment, startup::Application};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TEST_JWT_SECRET, TEST_SUPABASE_SECRET, TestApp, data, error_code, test_config,
};

const ME: &str = "{ me { id email displayName role timezone } }";

/// A token with `claims`, signed with `secret`: how tests forge tokens of every kind.
pub fn sign(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("test token")
}

#[tokio::test]
async fn register_then_login_and_read_me() {
    let app = TestApp::spawn().await;
    let registered = data(
        app.graphql(
            None,
            r#"mutation { register(input: {email: " Ana@Example.com ", password: "correct horse",
                displayName: "Ana Silva", role: CAREGIVER, timezone: "Europe/Lisbon"})
                { token expiresAt user { id email displayName role timezone caregiverProfile { availability } } } }"#,
            json!({}),
        )
        .await,
    );
    let user = &registered["register"]["user"];
    assert_eq!(user["email"], "ana@example.com");
    assert_eq!(user["role"], "CAREGIVER");
    assert_eq!(user["timezone"], "Europe/Lisbon");
    assert_eq!(user["caregiverProfile"]["availability"], "UNAVAILABLE");

    let login = data(
        app.graphql(
            None,
            r#"mutation { login(input: {email: "ANA@example.com", password: "correct horse"}) { token user { id } } }"#,
            json!({}),
        )
        .await,
    );
    assert_eq!(login["login"]["user"]["id"], user["id"]);
    let token = login["login"]["token"].as_str().unwrap();
    let me = data(app.graphql(Some(token), ME, json!({})).await);
    assert_eq!(me["me"]["id"], user["id"]);
    assert_eq!(me["me"]["displayName"], "Ana Silva");
}

#[tokio::test]
async fn registration_input_is_validated_field_by_field() {
    let app = TestApp::spawn().await;
    let register = "mutation($input: RegisterInput!) { register(input: $input) { token } }";
    let valid = json!({ "email": "bo@example.com", "password": "correct horse", "displayName": "Bo", "role": "CARE_RECIPIENT" });
    for (field, value, expected_field) in [
        ("email", json!("not-an-email"), "email"),
        ("password", json!("short"), "password"),
        ("displayName", json!("   "), "displayName"),
        ("role", json!("ADMIN"), "role"),
        ("timezone", json!("Mars/Olympus"), "timezone"),
    ] {
        let mut input = valid.clone();
        input[field] = value;
        let response = app.graphql(None, register, json!({ "input": input })).await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "{field}: {response}"
        );
        assert_eq!(response["errors"][0]["extensions"]["field"], expected_field);
    }
    data(app.graphql(None, register, json!({ "input": valid })).await);
    let mut again = valid.clone();
    again["email"] = json!("BO@example.com");
    let response = app.graphql(None, register, json!({ "input": again })).await;
    assert_eq!(error_code(&response), "CONFLICT");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_fail_alike() {
    let app = TestApp::spawn().await;
    app.graphql(
        None,
        r#"mutation { register(input: {email: "cy@example.com", password: "correct horse", displayName: "Cy", role: CARE_RECIPIENT}) { token } }"#,
        json!({}),
    )
    .await;
    let login = "mutation($email: String!) { login(input: {email: $email, password: \"wrong horse\"}) { token } }";
    let wrong_password = app
        .graphql(None, login, json!({ "email": "cy@example.com" }))
        .await;
    let unknown = app
        .graphql(None, login, json!({ "email": "nobody@example.com" }))
        .await;
    assert_eq!(error_code(&wrong_password), "UNAUTHENTICATED");
    assert_eq!(error_code(&unknown), "UNAUTHENTICATED");
    assert_eq!(
        wrong_password["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
}

#[tokio::test]
async fn every_token_fault_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Dee").await;
    let now = app.clock_now();
    let good = json!({ "sub": user.id, "iat": now, "exp": now + 600, "iss": "caregraph", "aud": "caregraph" });
    let with = |key: &str, value: Value| {
        let mut claims = good.clone();
        claims[key] = value;
        claims
    };
    let without = |key: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(key);
        claims
    };
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    // The well-formed token works, so each failure below is the fault it names.
    let ok = app
        .graphql(Some(&sign(&good, TEST_JWT_SECRET)), ME, json!({}))
        .await;
    assert_eq!(data(ok)["me"]["id"], user.id.as_str());
    let cases = [
        (
            "expired",
            sign(&with("exp", json!(now - 1)), TEST_JWT_SECRET),
            "expired",
        ),
        (
            "bad signature",
            sign(&good, "another-secret-that-is-32-bytes-long!!"),
            "bad signature",
        ),
        ("alg none", alg_none, "malformed"),
        (
            "wrong audience",
            sign(&with("aud", json!("someone-else")), TEST_JWT_SECRET),
            "wrong audience",
        ),
        (
            "wrong issuer",
            sign(&with("iss", json!("someone-else")), TEST_JWT_SECRET),
            "wrong issuer",
        ),
        (
            "missing sub",
            sign(&without("sub"), TEST_JWT_SECRET),
            "missing claim sub",
        ),
        (
            "unknown user",
            sign(&with("sub", json!(Uuid::now_v7())), TEST_JWT_SECRET),
            "no longer exists",
        ),
        ("garbage", "not.a.token".to_owned(), "malformed"),
    ];
    for (fault, token, reason) in cases {
        let response = app.graphql(Some(&token), ME, json!({})).await;
        assert_eq!(
            error_code(&response),
            "UNAUTHENTICATED",
            "{fault}: {response}"
        );
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{fault}: {message}");
    }
    let anonymous = app.graphql(None, ME, json!({})).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

#[tokio::test]
async fn supabase_tokens_provision_the_user_once() {
    let app = TestApp::spawn().await;
    let id = Uuid::new_v4();
    let now = app.clock_now();
    let claims = json!({
        "sub": id, "aud": "authenticated", "role": "authenticated", "exp": now + 600, "iat": now,
        "iss": "https://project.supabase.co/auth/v1", "email": "Eve@Example.com",
        "user_metadata": { "full_name": "Eve Adams", "role": "caregiver", "timezone": "America/New_York" }
    });
    let token = sign(&claims, TEST_SUPABASE_SECRET);
    for _ in 0..2 {
        let me = data(app.graphql(Some(&token), ME, json!({})).await);
        assert_eq!(me["me"]["id"], id.to_string());
        assert_eq!(me["me"]["email"], "eve@example.com");
        assert_eq!(me["me"]["displayName"], "Eve Adams");
        assert_eq!(me["me"]["role"], "CAREGIVER");
        assert_eq!(me["me"]["timezone"], "America/New_York");
    }
    let mut anon_role = claims.clone();
    anon_role["role"] = json!("anon");
    let response = app
        .graphql(Some(&sign(&anon_role, TEST_SUPABASE_SECRET)), ME, json!({}))
        .await;
    assert_eq!(error_code(&response), "UNAUTHENTICATED");
    let forged = app
        .graphql(
            Some(&sign(&claims, "not-the-supabase-secret-32-bytes-long")),
            ME,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&forged), "UNAUTHENTICATED");
}

#[tokio::test]
async fn supabase_tokens_are_refused_unless_configured() {
    let mut config = test_config().await;
    config.auth.supabase_jwt_secret = None;
    let app = TestApp::spawn_with(config).await;
    let now = app.clock_now();
    let claims = json!({ "sub": Uuid::new_v4(), "aud": "authenticated", "role": "authenticated",
        "exp": now + 600, "email": "fay@example.com" });
    let response = app
        .graphql(Some(&sign(&claims, TEST_SUPABASE_SECRET)), ME, json!({}))
        .await;
    assert_eq!(error_code(&response), "UNAUTHENTICATED");
}

#[tokio::test]
async fn production_refuses_the_development_secret() {
    let mut config = test_config().await;
    config.environment = Environment::Production;
    config.auth.jwt_secret = caregraph::config::DEV_JWT_SECRET.into();
    let refused = Application::build(config).await;
    assert!(
        refused.is_err(),
        "production must not start with the dev secret"
    );

    let mut config = test_config().await;
    config.environment = Environment::Production;
    config.http.cors_allowed_origins = Some(vec!["https://app.example.com".to_owned()]);
    assert!(Application::build(config).await.is_ok());
}
