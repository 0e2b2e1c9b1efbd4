//! GraphQL over HTTP as the spec and the clients expect: queries over `GET`, the
//! `application/graphql-response+json` media type and its statuses, and automatic persisted
//! queries over POST and GET.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, TestUser, data, error_code, test_config};

/// A response's status, content type and JSON body.
struct Answer {
    status: u16,
    content_type: String,
    allow: Option<String>,
    body: Value,
}

/// The operation most tests send: who the viewer is.
const ME: &str = "{ me { id displayName } }";
/// The media type of the GraphQL-over-HTTP spec.
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
/// What a browser sends when it navigates to a page.
const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let allow = header("allow");
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("HTTP {status} answered with a body that is not JSON: {text}"));
    Answer {
        status,
        content_type,
        allow,
        body,
    }
}

fn url(app: &TestApp) -> String {
    format!("http://{}/graphql", app.addr)
}

/// `GET /graphql` with `params` in the URL, as `user` if any, accepting `accept`.
async fn get(
    app: &TestApp,
    user: Option<&TestUser>,
    accept: &str,
    params: &[(&str, &str)],
) -> Answer {
    let mut request = reqwest::Client::new()
        .get(url(app))
        .header("accept", accept)
        .query(params);
    if let Some(user) = user {
        request = request.bearer_auth(&user.token);
    }
    answer(request).await
}

/// `POST /graphql` with `body`, as `user` if any, accepting `accept`.
async fn post(app: &TestApp, user: Option<&TestUser>, accept: &str, body: Value) -> Answer {
    let mut request = reqwest::Client::new()
        .post(url(app))
        .header("accept", accept)
        .json(&body);
    if let Some(user) = user {
        request = request.bearer_auth(&user.token);
    }
    answer(request).await
}

fn sha256(query: &str) -> String {
    format!("{:x}", Sha256::digest(query.as_bytes()))
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

#[tokio::test]
async fn get_runs_a_query_whatever_json_the_client_accepts() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Gina").await;
    for (accept, content_type) in [
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (
            "application/graphql-response+json, application/json;q=0.9",
            GRAPHQL_RESPONSE,
        ),
        ("*/*", "application/json"),
    ] {
        let got = get(&app, Some(&user), accept, &[("query", ME)]).await;
        assert_eq!(got.status, 200, "{accept}: {}", got.body);
        assert!(got.content_type.starts_with(content_type), "{accept}");
        assert_eq!(data(got.body)["me"]["id"], user.id.as_str(), "{accept}");
    }

    // Variables and the operation's name travel in the URL too.
    let two = "query Who { me { id } } query Inbox($first: Int) { notifications(first: $first) { nodes { id } } }";
    let got = get(
        &app,
        Some(&user),
        "application/json",
        &[
            ("query", two),
            ("operationName", "Inbox"),
            ("variables", r#"{"first": 5}"#),
        ],
    )
    .await;
    assert!(data(got.body)["notifications"]["nodes"].is_array());
}

#[tokio::test]
async fn get_refuses_mutations_and_subscriptions_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Hana").await;
    let rename = r#"mutation { updateProfile(input: { displayName: "Renamed" }) { id } }"#;
    for accept in ["application/json", GRAPHQL_RESPONSE] {
        let got = get(&app, Some(&user), accept, &[("query", rename)]).await;
        assert_eq!(got.status, 405, "{accept}: {}", got.body);
        assert_eq!(got.allow.as_deref(), Some("POST"), "{accept}");
        assert_eq!(error_code(&got.body), "METHOD_NOT_ALLOWED", "{accept}");
    }
    // The mutation picked out of a document that also holds a query is refused as well.
    let both = format!(
        "query Me {ME} {}",
        rename.replacen("mutation", "mutation Rename", 1)
    );
    let got = get(
        &app,
        Some(&user),
        "application/json",
        &[("query", &both), ("operationName", "Rename")],
    )
    .await;
    assert_eq!(
        (got.status, error_code(&got.body).as_str()),
        (405, "METHOD_NOT_ALLOWED")
    );
    let me = app.ok(&user, ME, json!({})).await;
    assert_eq!(me["me"]["displayName"], "Hana");

    let subscribe = "subscription { notificationAdded { id } }";
    let got = get(
        &app,
        Some(&user),
        "application/json",
        &[("query", subscribe)],
    )
    .await;
    assert_eq!(
        (got.status, error_code(&got.body).as_str()),
        (405, "METHOD_NOT_ALLOWED")
    );
}

#[tokio::test]
async fn a_browser_still_gets_graphiql() {
    let app = TestApp::spawn().await;
    for params in [&[][..], &[("query", ME)][..]] {
        let page = reqwest::Client::new()
            .get(url(&app))
            .header("accept", BROWSER)
            .query(params)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let content_type = page.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(page.text().await.unwrap().contains("graphiql"));
    }
}

#[tokio::test]
async fn the_spec_media_type_answers_request_errors_with_400_and_no_data() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Ines").await;
    for broken in ["{ me { id ", "{ nothingHere }"] {
        let got = post(
            &app,
            Some(&user),
            GRAPHQL_RESPONSE,
            json!({ "query": broken }),
        )
        .await;
        assert_eq!(got.status, 400, "{}", got.body);
        assert!(got.content_type.starts_with(GRAPHQL_RESPONSE));
        assert!(got.body.get("data").is_none(), "{}", got.body);
        assert_eq!(error_code(&got.body), "BAD_USER_INPUT");

        // Plain JSON keeps answering 200, as clients written before the spec expect.
        let got = post(
            &app,
            Some(&user),
            "application/json",
            json!({ "query": broken }),
        )
        .await;
        assert_eq!(got.status, 200);
        assert!(got.content_type.starts_with("application/json"));
        assert_eq!(error_code(&got.body), "BAD_USER_INPUT");
    }

    // An operation that ran answers 200 with its data, errors or not.
    let got = post(&app, Some(&user), GRAPHQL_RESPONSE, json!({ "query": ME })).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["data"]["me"]["id"], user.id.as_str());
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        let got = post(&app, None, accept, json!({ "query": ME })).await;
        assert_eq!(got.status, 200, "{accept}");
        assert_eq!(error_code(&got.body), "UNAUTHENTICATED", "{accept}");
    }
}

#[tokio::test]
async fn a_get_without_a_token_is_refused_as_a_post_is() {
    let app = TestApp::spawn().await;
    for accept in ["application/json", GRAPHQL_RESPONSE] {
        let by_post = post(&app, None, accept, json!({ "query": ME })).await;
        let by_get = get(&app, None, accept, &[("query", ME)]).await;
        assert_eq!(error_code(&by_get.body), "UNAUTHENTICATED", "{accept}");
        assert_eq!(by_get.status, by_post.status, "{accept}");
        assert_eq!(by_get.body, by_post.body, "{accept}");
    }
}

#[tokio::test]
async fn persisted_queries_are_registered_once_then_run_by_hash() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Jana").await;
    let hash = sha256(ME);
    let extensions = persisted(&hash).to_string();

    for accept in ["application/json", GRAPHQL_RESPONSE] {
        let unknown = post(
            &app,
            Some(&user),
            accept,
            json!({ "extensions": persisted(&hash) }),
        )
        .await;
        assert_eq!(unknown.status, 200, "{accept}: {}", unknown.body);
        assert_eq!(
            unknown.body["errors"][0]["message"],
            "PersistedQueryNotFound"
        );
        assert_eq!(error_code(&unknown.body), "PERSISTED_QUERY_NOT_FOUND");
        let unknown = get(&app, Some(&user), accept, &[("extensions", &extensions)]).await;
        assert_eq!(error_code(&unknown.body), "PERSISTED_QUERY_NOT_FOUND");
    }

    // A hash that is not the query's is refused, and registers nothing.
    let wrong = sha256("{ me { id } }");
    let refused = post(
        &app,
        Some(&user),
        "application/json",
        json!({ "query": ME, "extensions": persisted(&wrong) }),
    )
    .await;
    assert_eq!(error_code(&refused.body), "BAD_USER_INPUT");
    assert!(refused.body["data"].is_null());
    let got = post(
        &app,
        Some(&user),
        GRAPHQL_RESPONSE,
        json!({ "extensions": persisted(&wrong) }),
    )
    .await;
    assert_eq!(error_code(&got.body), "PERSISTED_QUERY_NOT_FOUND");

    let registered = post(
        &app,
        Some(&user),
        "application/json",
        json!({ "query": ME, "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(data(registered.body)["me"]["id"], user.id.as_str());

    let by_post = post(
        &app,
        Some(&user),
        "application/json",
        json!({ "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(data(by_post.body)["me"]["id"], user.id.as_str());
    let by_get = get(
        &app,
        Some(&user),
        GRAPHQL_RESPONSE,
        &[("extensions", &extensions)],
    )
    .await;
    assert_eq!(by_get.status, 200);
    assert_eq!(data(by_get.body)["me"]["id"], user.id.as_str());
}

#[tokio::test]
async fn a_get_url_longer_than_a_body_may_be_is_refused() {
    let mut config = test_config().await;
    config.http.max_body_bytes = 2_048;
    let app = TestApp::spawn_with(config).await;
    let user = app.register("CARE_RECIPIENT", "Kira").await;
    let padded = format!("{{ me {{ id }} }} #{}", "x".repeat(2_100));
    let got = get(&app, Some(&user), "application/json", &[("query", &padded)]).await;
    assert_eq!(
        (got.status, error_code(&got.body).as_str()),
        (414, "URI_TOO_LONG")
    );
    let short = get(&app, Some(&user), "application/json", &[("query", ME)]).await;
    assert_eq!(data(short.body)["me"]["id"], user.id.as_str());
    let malformed = get(
        &app,
        Some(&user),
        "application/json",
        &[("query", ME), ("variables", "{not json")],
    )
    .await;
    assert_eq!(
        (malformed.status, error_code(&malformed.body).as_str()),
        (400, "BAD_REQUEST")
    );
}
