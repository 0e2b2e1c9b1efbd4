//! The GraphiQL explorer as a browser gets it: its files are the vendored ones
//! `assets/graphiql/MANIFEST` records, and in a real headless Chromium, which can reach
//! nothing but loopback, the page renders, runs a query with the token from its headers
//! editor and a subscription over graphql-ws, without one request leaving this server.
//!
//! The browser test needs Debian's `/usr/bin/chromium`. Without it the test is skipped with a
//! loud message, or fails when `BROWSER_TESTS=required` (as in `.ci/run`).

use std::{
    collections::BTreeSet,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use uuid::Uuid;

use crate::helpers::{TestApp, error_code, test_config};

const MANIFEST: &str = include_str!("../../assets/graphiql/MANIFEST");
const CHROMIUM: &str = "/usr/bin/chromium";

/// One line of the manifest: `package version file sha256`.
struct Vendored<'a> {
    package: &'a str,
    version: &'a str,
    file: &'a str,
    sha256: &'a str,
}

fn manifest() -> Vec<Vendored<'static>> {
    MANIFEST
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "a MANIFEST line has four fields: {line}");
            Vendored {
                package: fields[0],
                version: fields[1],
                file: fields[2],
                sha256: fields[3],
            }
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The `src` and `href` URLs under `/graphiql/` in `page`.
fn asset_urls(page: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in page.match_indices(attribute) {
            let rest = &page[at + attribute.len()..];
            let url = &rest[..rest.find('"').expect("a closing quote")];
            if url.starts_with("/graphiql/") {
                urls.push(url.to_owned());
            }
        }
    }
    urls
}

async fn explorer_page(app: &TestApp) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://{}/graphql", app.addr))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_page_loads_the_manifests_files_from_this_server_under_a_strict_policy() {
    let app = TestApp::spawn().await;
    let page = explorer_page(&app).await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let script_src = policy
        .split(';')
        .map(str::trim)
        .find(|directive| directive.starts_with("script-src"))
        .unwrap_or_else(|| panic!("no script-src in {policy}"));
    assert_eq!(script_src, "script-src 'self'", "{policy}");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let sockets = format!("ws://{0} wss://{0}", app.addr);
    assert!(policy.contains(&sockets), "{policy}");
    let page = page.text().await.unwrap();
    assert!(!page.contains("unpkg") && !page.contains("cdn"), "{page}");
    assert!(
        !page.contains("<script>") && !page.contains("<style"),
        "nothing inline: {page}"
    );

    let urls = asset_urls(&page);
    let mut loaded = BTreeSet::new();
    for url in &urls {
        let response = reqwest::get(format!("http://{}{url}", app.addr))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let headers = response.headers().clone();
        let content_type = headers["content-type"].to_str().unwrap();
        let expected = if url.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(content_type, expected, "{url}");
        assert_eq!(
            headers["cache-control"], "public, max-age=31536000, immutable",
            "{url}"
        );
        let body = response.bytes().await.unwrap();
        // /graphiql/<package>@<version>/<file>
        let (tag, name) = url["/graphiql/".len()..].split_once('/').unwrap();
        let (package, version) = tag.split_once('@').unwrap();
        if package == "caregraph" {
            let script = include_bytes!("../../assets/graphiql/caregraph.js");
            assert_eq!(&body[..], &script[..], "{url}");
            assert!(sha256_hex(script).starts_with(version), "{url}");
            continue;
        }
        let entry = manifest()
            .into_iter()
            .find(|entry| {
                entry.package == package
                    && entry.version == version
                    && entry.file.rsplit('/').next() == Some(name)
            })
            .unwrap_or_else(|| panic!("{url} is not in assets/graphiql/MANIFEST"));
        assert_eq!(
            sha256_hex(&body),
            entry.sha256,
            "{url} is not the {} {} file the manifest records",
            entry.package,
            entry.version
        );
        loaded.insert(entry.file);
    }
    let bundles: BTreeSet<&str> = manifest()
        .into_iter()
        .map(|entry| entry.file)
        .filter(|file| !file.contains("LICENSE"))
        .collect();
    assert_eq!(
        loaded, bundles,
        "the page loads every vendored bundle, and nothing else"
    );

    let unknown = reqwest::get(format!(
        "http://{}/graphiql/graphiql@0.0.1/graphiql.min.js",
        app.addr
    ))
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn without_graphiql_its_files_are_not_served() {
    let on = TestApp::spawn().await;
    let page = explorer_page(&on).await.text().await.unwrap();
    let script = asset_urls(&page)
        .into_iter()
        .find(|url| url.ends_with("graphiql.min.js"))
        .expect("the page loads GraphiQL");

    let mut config = test_config().await;
    config.graphql.graphiql = false;
    let off = TestApp::spawn_with(config).await;
    let response = reqwest::get(format!("http://{}{script}", off.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
}

/// The browser to drive, or `None` (after saying so loudly) when it is not installed and
/// not required.
fn chromium() -> Option<&'static Path> {
    let path = Path::new(CHROMIUM);
    if path.exists() {
        return Some(path);
    }
    let required = std::env::var("BROWSER_TESTS").is_ok_and(|value| value == "required");
    assert!(
        !required,
        "BROWSER_TESTS=required but {CHROMIUM} is missing: install Debian's chromium \
         (apt-get install chromium)"
    );
    eprintln!(
        "\n========================================================================\n\
         SKIPPED the GraphiQL browser test: {CHROMIUM} is missing.\n\
         Install Debian's chromium (apt-get install chromium) to run it;\n\
         BROWSER_TESTS=required turns this skip into a failure.\n\
         ========================================================================\n"
    );
    None
}

/// A headless Chromium that can resolve no host name and reach nothing but loopback, killed
/// with its whole process group when dropped.
struct Browser {
    child: Child,
    profile: PathBuf,
    /// The DevTools HTTP endpoint, `127.0.0.1:<port>`.
    devtools: String,
}

impl Browser {
    async fn launch(executable: &Path) -> Browser {
        let profile = std::env::temp_dir().join(format!("caregraph-chromium-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&profile).unwrap();
        let child = Command::new(executable)
            .args([
                "--headless=new",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.display()),
                "--no-sandbox",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
                "--metrics-recording-only",
                "--no-pings",
                "--mute-audio",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--proxy-server=direct://",
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", executable.display()));
        let mut browser = Browser {
            child,
            profile,
            devtools: String::new(),
        };
        let port_file = browser.profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Some(port) = text.lines().next().filter(|port| !port.is_empty())
            {
                browser.devtools = format!("127.0.0.1:{port}");
                break;
            }
            if let Ok(Some(status)) = browser.child.try_wait() {
                panic!("chromium exited before it listened for DevTools: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "chromium wrote no {} within 30 s",
                port_file.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        browser
    }

    /// The DevTools socket of the browser's first page.
    async fn page(&self) -> Cdp {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let targets: Value =
                match reqwest::get(format!("http://{}/json/list", self.devtools)).await {
                    Ok(response) => response.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
            let page = targets.as_array().and_then(|targets| {
                targets
                    .iter()
                    .find(|target| target["type"] == "page")
                    .and_then(|target| target["webSocketDebuggerUrl"].as_str())
            });
            if let Some(url) = page {
                let (socket, _) = tokio_tungstenite::connect_async(url)
                    .await
                    .unwrap_or_else(|err| panic!("connecting to DevTools at {url}: {err}"));
                return Cdp {
                    socket,
                    next_id: 0,
                    events: Vec::new(),
                };
            }
            assert!(
                Instant::now() < deadline,
                "chromium listed no page target within 15 s: {targets}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group holds the browser and its renderer, GPU and utility processes.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; it touches no memory.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A Chrome DevTools Protocol session with one page: commands in order, events kept.
struct Cdp {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: Vec<Value>,
}

impl Cdp {
    /// Sends `method` and waits (at most 20 s) for its result, keeping the events that
    /// arrive meanwhile.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::text(command.to_string()))
            .await
            .unwrap_or_else(|err| panic!("sending {method}: {err}"));
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let message = self.next_message().await;
                if message["id"] == id {
                    return message;
                }
                self.events.push(message);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} within 20 s"));
        if let Some(error) = answer.get("error") {
            panic!("{method} failed: {error}");
        }
        answer["result"].clone()
    }

    async fn next_message(&mut self) -> Value {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("the DevTools socket failed: {err}"),
                None => panic!("the DevTools socket closed"),
            }
        }
    }

    /// The value of `expression` in the page (awaited if it is a promise).
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("evaluating {expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy; fails after `within`, saying `what` it waited
    /// for and what the page said meanwhile.
    async fn wait_for(&mut self, what: &str, expression: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        let mut last;
        loop {
            last = self.eval(expression).await;
            let truthy = match &last {
                Value::Null | Value::Bool(false) => false,
                Value::String(text) => !text.is_empty(),
                _ => true,
            };
            if truthy {
                return last;
            }
            if Instant::now() >= deadline {
                let diagnostics = self.eval(DIAGNOSTICS).await;
                panic!(
                    "{what}: not within {within:?} (last value {last}); page: {diagnostics}; \
                     console and exceptions: {}",
                    self.console()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The console messages and uncaught exceptions seen so far.
    fn console(&self) -> String {
        self.events
            .iter()
            .filter(|event| {
                matches!(
                    event["method"].as_str(),
                    Some("Runtime.consoleAPICalled" | "Runtime.exceptionThrown" | "Log.entryAdded")
                )
            })
            .map(|event| event["params"].to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every URL the page asked for, HTTP and websocket.
    fn requested_urls(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|event| match event["method"].as_str() {
                Some("Network.requestWillBeSent") => event["params"]["request"]["url"].as_str(),
                Some("Network.webSocketCreated") => event["params"]["url"].as_str(),
                _ => None,
            })
            .map(str::to_owned)
            .collect()
    }
}

/// What the page shows, for failure messages.
const DIAGNOSTICS: &str = r#"JSON.stringify({
  url: location.href,
  response: (document.querySelector('.graphiql-response .CodeMirror') || {}).CodeMirror?.getValue(),
  body: document.body ? document.body.innerText.slice(0, 500) : null,
  csp: window.__cspViolations,
})"#;

/// Records the page's policy violations in `window.__cspViolations` from its first script on.
const RECORD_VIOLATIONS: &str = r#"window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});"#;

/// Sets the CodeMirror editor under `selector` to `value` (a JSON string literal), as typing
/// would.
fn set_editor(selector: &str, value: &str) -> String {
    format!(
        "(() => {{ const editor = document.querySelector({selector:?}).CodeMirror; \
         editor.setValue({value}); return editor.getValue(); }})()",
        value = serde_json::to_string(value).unwrap()
    )
}

const QUERY_EDITOR: &str = ".graphiql-query-editor .CodeMirror";
/// The headers editor: shown, not hidden, in the editor tools.
const HEADERS_EDITOR: &str = "section.graphiql-editor-tool[aria-label=\"Headers\"] .graphiql-editor:not(.hidden) .CodeMirror";
const RESPONSE: &str =
    "document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()";
const RUN: &str = "document.querySelector('.graphiql-execute-button').click(); true";

/// Waits until the response pane's JSON has `pointer` equal to `expected`.
async fn wait_for_response(cdp: &mut Cdp, what: &str, pointer: &str, expected: Value) -> Value {
    let expression = format!(
        "(() => {{ try {{ const r = JSON.parse({RESPONSE}); \
         return JSON.stringify(r{path}) === {expected:?} ? r : null; }} catch (e) {{ return null; }} }})()",
        path = pointer
            .split('/')
            .filter(|part| !part.is_empty())
            .map(|part| format!("?.[{part:?}]"))
            .collect::<String>(),
        expected = expected.to_string(),
    );
    cdp.wait_for(what, &expression, Duration::from_secs(30))
        .await
}

#[tokio::test]
async fn graphiql_runs_a_query_and_a_subscription_in_a_browser_that_reaches_only_this_server() {
    let Some(executable) = chromium() else {
        return;
    };
    let app = TestApp::spawn().await;
    let caregiver = app.register("CAREGIVER", "Greta").await;
    let recipient = app.register("CARE_RECIPIENT", "Rosa").await;

    let browser = Browser::launch(executable).await;
    let mut cdp = browser.page().await;
    cdp.call("Network.enable", json!({})).await;
    cdp.call("Runtime.enable", json!({})).await;
    cdp.call("Log.enable", json!({})).await;
    cdp.call("Page.enable", json!({})).await;
    cdp.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": RECORD_VIOLATIONS }),
    )
    .await;
    let origin = format!("http://{}", app.addr);
    cdp.call(
        "Page.navigate",
        json!({ "url": format!("{origin}/graphql") }),
    )
    .await;

    cdp.wait_for(
        "GraphiQL renders with its run button, query editor and a visible headers editor",
        &format!(
            "!!(document.querySelector('.graphiql-container') \
             && document.querySelector('.graphiql-execute-button') \
             && document.querySelector({QUERY_EDITOR:?}) \
             && document.querySelector({HEADERS_EDITOR:?}))"
        ),
        Duration::from_secs(30),
    )
    .await;
    let default_headers = cdp
        .eval(&format!(
            "document.querySelector({HEADERS_EDITOR:?}).CodeMirror.getValue()"
        ))
        .await;
    assert!(
        default_headers
            .as_str()
            .is_some_and(|headers| headers.contains("Authorization")),
        "the headers editor starts with an Authorization hint: {default_headers}"
    );

    // A query with the token from the headers editor, over HTTP.
    let headers = json!({ "Authorization": format!("Bearer {}", caregiver.token) }).to_string();
    cdp.eval(&set_editor(HEADERS_EDITOR, &headers)).await;
    cdp.eval(&set_editor(QUERY_EDITOR, "{ me { displayName role } }"))
        .await;
    cdp.eval(RUN).await;
    let answer = wait_for_response(
        &mut cdp,
        "the response pane shows the caregiver's name",
        "/data/me/displayName",
        json!("Greta"),
    )
    .await;
    assert_eq!(answer["data"]["me"]["role"], "CAREGIVER", "{answer}");

    // A subscription over graphql-ws, with the same token in connection_init.
    cdp.eval(&set_editor(
        QUERY_EDITOR,
        "subscription { unreadNotificationCount }",
    ))
    .await;
    cdp.eval(RUN).await;
    wait_for_response(
        &mut cdp,
        "the subscription shows the caregiver's count before any notification",
        "/data/unreadNotificationCount",
        json!(0),
    )
    .await;
    app.book(&recipient, &caregiver, 24).await;
    wait_for_response(
        &mut cdp,
        "the subscription shows the booking request's notification",
        "/data/unreadNotificationCount",
        json!(1),
    )
    .await;

    // Another token in the headers editor: the subscription runs on a new socket, as the
    // recipient (who has no notification).
    cdp.eval(RUN).await;
    cdp.wait_for(
        "the run button stops the subscription",
        "document.querySelector('.graphiql-execute-button').getAttribute('aria-label').startsWith('Execute')",
        Duration::from_secs(10),
    )
    .await;
    let headers = json!({ "Authorization": format!("Bearer {}", recipient.token) }).to_string();
    cdp.eval(&set_editor(HEADERS_EDITOR, &headers)).await;
    cdp.eval(RUN).await;
    wait_for_response(
        &mut cdp,
        "the subscription shows the recipient's count after the token changed",
        "/data/unreadNotificationCount",
        json!(0),
    )
    .await;

    let violations = cdp.eval("JSON.stringify(window.__cspViolations)").await;
    assert_eq!(
        violations,
        json!("[]"),
        "the page broke its own policy; console: {}",
        cdp.console()
    );
    let urls = cdp.requested_urls();
    let loopback = [
        format!("http://{}/", app.addr),
        format!("ws://{}/", app.addr),
    ];
    for url in &urls {
        assert!(
            loopback.iter().any(|prefix| url.starts_with(prefix)) || url.starts_with("data:"),
            "the page asked for {url}, which is not this server; every request: {urls:#?}"
        );
    }
    assert!(
        urls.iter().any(|url| url.contains("/graphiql/graphiql@")),
        "the page loaded GraphiQL from this server: {urls:#?}"
    );
    let socket = format!("ws://{}/graphql", app.addr);
    let sockets = urls.iter().filter(|url| **url == socket).count();
    assert_eq!(
        sockets, 2,
        "one graphql-ws socket per token, on this server: {urls:#?}"
    );
    drop(cdp);
    drop(browser);
}
