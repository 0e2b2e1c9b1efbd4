//! The GraphiQL explorer, served from the binary: a small HTML page, its script
//! (`assets/graphiql/caregraph.js`) and the vendored bundles it loads (React, ReactDOM,
//! GraphiQL, graphql-ws; `scripts/refresh-graphiql.sh` fetches them and records their hashes in
//! `assets/graphiql/MANIFEST`). The browser needs nothing but this server, and the page's
//! Content-Security-Policy allows scripts from this origin only, none inline.
//!
//! Each file is served under `/graphiql/<package>@<version>/<file>` (the page script's
//! version is a digest of its bytes), so a URL names one content for ever and is cached as
//! immutable.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use super::rejection::HttpRejection;

/// One file the page loads.
struct Asset {
    package: &'static str,
    /// The package's version; for the page script, a digest of its bytes.
    version: String,
    file: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    fn vendored(
        package: &'static str,
        version: &'static str,
        file: &'static str,
        bytes: &'static [u8],
    ) -> Self {
        Self {
            package,
            version: version.to_owned(),
            file,
            content_type: content_type(file),
            bytes,
        }
    }

    fn url(&self) -> String {
        format!("/graphiql/{}@{}/{}", self.package, self.version, self.file)
    }
}

fn content_type(file: &str) -> &'static str {
    if file.ends_with(".css") {
        "text/css; charset=utf-8"
    } else {
        "text/javascript; charset=utf-8"
    }
}

const REACT: &str = "18.3.1";
const GRAPHIQL: &str = "3.8.3";
const GRAPHQL_WS: &str = "5.16.2";

/// Every file, in the order the page loads them (scripts) and the stylesheet last.
static ASSETS: LazyLock<[Asset; 6]> = LazyLock::new(|| {
    let script = include_bytes!("../../assets/graphiql/caregraph.js");
    let digest = Sha256::digest(script);
    let short: String = digest[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    [
        Asset::vendored(
            "react",
            REACT,
            "react.production.min.js",
            include_bytes!("../../assets/graphiql/react/umd/react.production.min.js"),
        ),
        Asset::vendored(
            "react-dom",
            REACT,
            "react-dom.production.min.js",
            include_bytes!("../../assets/graphiql/react-dom/umd/react-dom.production.min.js"),
        ),
        Asset::vendored(
            "graphiql",
            GRAPHIQL,
            "graphiql.min.js",
            include_bytes!("../../assets/graphiql/graphiql/graphiql.min.js"),
        ),
        Asset::vendored(
            "graphql-ws",
            GRAPHQL_WS,
            "graphql-ws.min.js",
            include_bytes!("../../assets/graphiql/graphql-ws/umd/graphql-ws.min.js"),
        ),
        Asset {
            package: "caregraph",
            version: short,
            file: "caregraph.js",
            content_type: content_type("caregraph.js"),
            bytes: script,
        },
        Asset::vendored(
            "graphiql",
            GRAPHIQL,
            "graphiql.min.css",
            include_bytes!("../../assets/graphiql/graphiql/graphiql.min.css"),
        ),
    ]
});

/// The page; `{assets}` stands for the tags that load the files.
const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>caregraph GraphiQL</title>
    <link rel="icon" href="data:,">
{assets}  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <noscript>GraphiQL needs JavaScript; the API itself answers POST /graphql.</noscript>
  </body>
</html>
"#;

/// The page, with its assets' URLs filled in.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let mut tags = String::new();
    for asset in ASSETS.iter() {
        let url = asset.url();
        if asset.file.ends_with(".css") {
            tags.push_str(&format!("    <link rel=\"stylesheet\" href=\"{url}\">\n"));
        } else {
            tags.push_str(&format!("    <script src=\"{url}\" defer></script>\n"));
        }
    }
    TEMPLATE.replace("{assets}", &tags)
});

/// A year: every asset URL names one content for ever.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The explorer's page. The policy allows scripts, styles and fetches from this origin
/// only, and the graphql-ws socket on this host; fonts and images also as `data:` URLs (the
/// stylesheet embeds its fonts).
pub fn page(headers: &HeaderMap) -> Response {
    let sockets = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| is_host(host))
        .map(|host| format!(" ws://{host} wss://{host}"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         font-src 'self' data:; connect-src 'self'{sockets}; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE.as_str(),
    )
        .into_response();
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// Whether a `Host` header is a host name or address and port, nothing a policy would read
/// as another directive or source.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
}

/// `GET /graphiql/<package>@<version>/<file>`: one of the page's files, or 404.
pub async fn asset(Path((tag, file)): Path<(String, String)>) -> Response {
    let found = ASSETS
        .iter()
        .find(|asset| asset.file == file && format!("{}@{}", asset.package, asset.version) == tag);
    let Some(asset) = found else {
        return HttpRejection::NotFound.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, IMMUTABLE),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response()
}
