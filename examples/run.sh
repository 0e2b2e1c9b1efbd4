#!/usr/bin/env bash
# Runs both client examples against a caregraph server: examples/run.sh [base-url]
# (default http://127.0.0.1:8000). Fails if either program fails.
set -euo pipefail
cd "$(dirname "$0")"
export CAREGRAPH_URL="${1:-${CAREGRAPH_URL:-http://127.0.0.1:8000}}"
[ -d node_modules ] || npm ci --no-audit --no-fund
status=0
for example in apollo.mjs urql.mjs; do
    node "$example" || status=1
done
exit "$status"
