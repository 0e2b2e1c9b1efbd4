#!/usr/bin/env bash
# The GraphiQL page's JavaScript and CSS, vendored into assets/graphiql/ and embedded in the
# binary, so the explorer works with no internet access and under a strict
# Content-Security-Policy.
#
#   scripts/refresh-graphiql.sh           download the pinned versions from the npm registry,
#                                         check each tarball against the registry's
#                                         dist.integrity, extract the files and licences, and
#                                         rewrite assets/graphiql/MANIFEST
#   scripts/refresh-graphiql.sh --check   check the committed files against MANIFEST (offline)
#
# To move to another version, change it below, run the script, and run the browser test
# (cargo test --test api graphiql). The embedded files' paths and versions are also listed in
# src/http/graphiql.rs, which a test checks against MANIFEST.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="https://registry.npmjs.org"
ASSETS="assets/graphiql"
MANIFEST="$ASSETS/MANIFEST"

# package  version  files to take from the tarball (paths inside its package/ folder)
PACKAGES=(
    "react      18.3.1 umd/react.production.min.js LICENSE"
    "react-dom  18.3.1 umd/react-dom.production.min.js LICENSE"
    "graphiql   3.8.3  graphiql.min.js graphiql.min.css LICENSE"
    "graphql-ws 5.16.2 umd/graphql-ws.min.js LICENSE.md"
)

check() {
    [ -f "$MANIFEST" ] || { echo "refresh-graphiql: $MANIFEST is missing" >&2; exit 1; }
    local failed=0 package version file sha256 actual
    while read -r package version file sha256; do
        case "$package" in '#'* | '') continue ;; esac
        if [ ! -f "$ASSETS/$file" ]; then
            echo "refresh-graphiql: $ASSETS/$file ($package $version) is missing" >&2
            failed=1
            continue
        fi
        actual="$(sha256sum "$ASSETS/$file" | cut -d' ' -f1)"
        if [ "$actual" != "$sha256" ]; then
            echo "refresh-graphiql: $ASSETS/$file is not $package $version's file (sha256 $actual, MANIFEST says $sha256)" >&2
            failed=1
        fi
    done <"$MANIFEST"
    # Every pinned version is the one the manifest records.
    local entry
    for entry in "${PACKAGES[@]}"; do
        read -r package version _ <<<"$entry"
        if ! grep -q "^$package $version " "$MANIFEST"; then
            echo "refresh-graphiql: MANIFEST does not record $package $version (run scripts/refresh-graphiql.sh)" >&2
            failed=1
        fi
    done
    [ "$failed" -eq 0 ] && echo "refresh-graphiql: every file matches $MANIFEST"
    return "$failed"
}

# The hex digest a Subresource Integrity string ("sha512-<base64>") names.
integrity_hex() {
    local integrity="$1"
    case "$integrity" in
        sha512-*) printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n' ;;
        *) echo "refresh-graphiql: unsupported integrity $integrity" >&2; return 1 ;;
    esac
}

# The value of the first string member `name` in the JSON text `json` (the registry's version
# document names `integrity` and `tarball` once, in `dist`).
json_string() {
    printf '%s' "$2" | sed -n 's/.*"'"$1"'" *: *"\([^"]*\)".*/\1/p' | sed -n 1p
}

refresh() {
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    local manifest="$work/MANIFEST"
    {
        echo "# The files under assets/graphiql/ taken from npm packages, written by"
        echo "# scripts/refresh-graphiql.sh; check them with scripts/refresh-graphiql.sh --check."
        echo "# package version file sha256"
    } >"$manifest"
    local entry package version files metadata integrity tarball expected actual file dest
    for entry in "${PACKAGES[@]}"; do
        read -r package version files <<<"$entry"
        echo "refresh-graphiql: $package@$version"
        metadata="$(curl -fsS "$REGISTRY/$package/$version")"
        integrity="$(json_string integrity "$metadata")"
        tarball="$(json_string tarball "$metadata")"
        if [ -z "$integrity" ] || [ -z "$tarball" ]; then
            echo "refresh-graphiql: the registry gave no dist.integrity or dist.tarball for $package@$version" >&2
            exit 1
        fi
        case "$tarball" in
            "$REGISTRY"/*) ;;
            *) echo "refresh-graphiql: $package@$version's tarball is not on $REGISTRY: $tarball" >&2; exit 1 ;;
        esac
        curl -fsS -o "$work/$package.tgz" "$tarball"
        expected="$(integrity_hex "$integrity")"
        actual="$(sha512sum "$work/$package.tgz" | cut -d' ' -f1)"
        if [ "$expected" != "$actual" ]; then
            echo "refresh-graphiql: $package@$version's tarball does not match its dist.integrity" >&2
            exit 1
        fi
        mkdir -p "$work/$package"
        tar -xzf "$work/$package.tgz" -C "$work/$package"
        for file in $files; do
            dest="$package/$file"
            mkdir -p "$work/out/$(dirname "$dest")"
            cp "$work/$package/package/$file" "$work/out/$dest"
            echo "$package $version $dest $(sha256sum "$work/out/$dest" | cut -d' ' -f1)" >>"$manifest"
        done
    done
    # Replace only the vendored folders; the page's own files (caregraph.js) stay.
    for entry in "${PACKAGES[@]}"; do
        read -r package _ <<<"$entry"
        rm -rf "${ASSETS:?}/$package"
        mkdir -p "$ASSETS"
        cp -r "$work/out/$package" "$ASSETS/$package"
    done
    cp "$manifest" "$MANIFEST"
    check
}

case "${1:-}" in
    --check) check ;;
    "") refresh ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
