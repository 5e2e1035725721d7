#!/usr/bin/env bash
# Browser end-to-end tests of the admin console, in Debian's headless Chromium driven by
# playwright-core (no browser download), against the real gateway binary and the mock Codex
# upstream.
#
# Installs chromium with apt-get when it is missing, installs the pinned playwright-core with
# `npm ci` (into target/e2e-node, so that no node_modules folder lands in the work tree), builds
# the gateway and the mock upstream, starts both on free ports with a throw-away configuration
# (temp directory, SQLite database there, ADMIN_PASSWORD set), waits for /readyz, then runs
# tests/e2e/console.test.mjs with node's test runner. Screenshots of every page in both
# languages go to target/e2e-artifacts/ (kept after the run). Both processes are stopped on
# exit, whatever happens. Exits with the test runner's status.
#
# Extra arguments go to `node --test`, e.g. `bash tests/e2e/run.sh --test-name-pattern=logs`.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
node_dir="$target_dir/e2e-node"
artifacts="${E2E_ARTIFACTS:-$target_dir/e2e-artifacts}"

# --- Browser and driver ---------------------------------------------------------------------------
if [ ! -x "$CHROMIUM" ]; then
  echo "== installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
# The zh-CN screenshots need a CJK font (Debian's chromium package does not pull one in).
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=zh 2>/dev/null | head -n1)" ]; then
  echo "== installing a CJK font (fonts-noto-cjk)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq fonts-noto-cjk >/dev/null
fi
echo "== $("$CHROMIUM" --version 2>/dev/null | head -n1)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing node and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi

mkdir -p "$node_dir"
if ! cmp -s "$repo/tests/e2e/package-lock.json" "$node_dir/package-lock.json" \
  || [ ! -d "$node_dir/node_modules/playwright-core" ]; then
  echo "== npm ci (playwright-core, pinned by tests/e2e/package-lock.json)"
  cp "$repo/tests/e2e/package.json" "$repo/tests/e2e/package-lock.json" "$node_dir/"
  (cd "$node_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# --- Build ---------------------------------------------------------------------------------------
echo "== building the gateway and the mock upstream"
cargo build --quiet --workspace --bin gpt2api --bin mock_upstream

# --- Processes -----------------------------------------------------------------------------------
source "$repo/tests/support/stack.sh"
stack_init e2e
stack_start_mock "$target_dir/debug" 2
stack_start_gateway "$target_dir/debug" \
  GPT2API__CODEX__OAUTH_AUTHORIZE_URL="$mock_root_url/oauth/authorize" \
  GPT2API__CODEX__DEVICE_USERCODE_URL="$mock_root_url/api/accounts/deviceauth/usercode" \
  GPT2API__CODEX__DEVICE_TOKEN_URL="$mock_root_url/api/accounts/deviceauth/token"

# --- Tests ---------------------------------------------------------------------------------------
rm -rf "$artifacts"
mkdir -p "$artifacts"
echo "== running the browser tests (screenshots in $artifacts)"
set +e
GPT2API_URL="$gateway_url" \
  GPT2API_ADMIN_PASSWORD="$admin_password" \
  GPT2API_MOCK_ACCOUNTS_FILE="$accounts_file" \
  GPT2API_MOCK_ROOT_URL="$mock_root_url" \
  E2E_FIXTURES="$repo/tests/fixtures/auth" \
  E2E_ARTIFACTS="$artifacts" \
  E2E_NODE_MODULES="$node_dir/node_modules" \
  E2E_CHROMIUM="$CHROMIUM" \
  node --test --test-concurrency=1 --test-reporter=spec "$@" "$repo/tests/e2e/console.test.mjs"
status=$?
set -e
echo "== screenshots: $(find "$artifacts" -name '*.png' | wc -l) in $artifacts"
exit "$status"
