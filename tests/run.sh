#!/usr/bin/env bash
# The whole test suite: unit and integration tests on SQLite, then on PostgreSQL.
# PostgreSQL: TEST_DATABASE_URL (a database the tests may create databases from), default
# postgres://postgres@127.0.0.1:5432/test when a server answers there; skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== tests on SQLite"
env -u TEST_DATABASE_URL cargo test --workspace

pg_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -d "$pg_url"; then
  echo "== integration tests on PostgreSQL"
  TEST_DATABASE_URL="$pg_url" cargo test --test api
else
  echo "== PostgreSQL not reachable at the test URL: skipping the PostgreSQL run"
  if [ "${CI:-}" = "true" ]; then
    echo "CI must run the PostgreSQL tests" >&2
    exit 1
  fi
fi

echo "== OpenAI SDK end-to-end tests"
bash tests/sdk/run.sh

echo "== JavaScript client libraries"
bash tests/clients/run.sh

echo "== the Codex CLI"
bash tests/codex-cli/run.sh

echo "== console end-to-end tests in headless Chromium"
bash tests/e2e/run.sh
