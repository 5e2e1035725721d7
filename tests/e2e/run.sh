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
cargo build --quiet --bin gpt2api --example mock_upstream

# --- Processes -----------------------------------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gpt2api-e2e.XXXXXX")"
mock_pid=""
gateway_pid=""
cleanup() {
  local status=$?
  for pid in "$gateway_pid" "$mock_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
  done
  for pid in "$gateway_pid" "$mock_pid"; do
    if [ -n "$pid" ]; then
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ "$status" -ne 0 ] && [ -f "$tmp/gateway.log" ]; then
    echo "== last lines of the gateway log ($tmp/gateway.log kept)" >&2
    tail -n 40 "$tmp/gateway.log" >&2 || true
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits up to $2 seconds for the command $1 to succeed; fails when process $3 dies meanwhile.
wait_for() {
  local check="$1" seconds="$2" pid="$3" what="$4"
  local deadline=$((SECONDS + seconds))
  until eval "$check"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$what exited before it was ready" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$what not ready after ${seconds}s" >&2
      return 1
    fi
    sleep 0.2
  done
}

echo "== starting the mock upstream"
"$target_dir/debug/examples/mock_upstream" --port 0 --accounts 2 \
  --accounts-out "$tmp/mock-accounts.json" >"$tmp/mock.out" 2>"$tmp/mock.log" &
mock_pid=$!
wait_for 'grep -qs "^MOCK_UPSTREAM " "$tmp/mock.out"' 30 "$mock_pid" "the mock upstream" || {
  cat "$tmp/mock.log" >&2
  exit 1
}
mock_line="$(grep -m1 '^MOCK_UPSTREAM ' "$tmp/mock.out")"
field() { tr ' ' '\n' <<<"$mock_line" | sed -n "s/^$1=//p"; }
mock_base_url="$(field base_url)"
mock_oauth_url="$(field oauth_url)"
mock_root_url="$(field root_url)"
echo "   $mock_line"

port="$(node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')"
admin_password="E2e-$(node -e 'console.log(require("crypto").randomBytes(12).toString("base64url"))')-9aZ"
gateway_url="http://127.0.0.1:$port"

echo "== starting the gateway on $gateway_url"
mkdir -p "$tmp/run"
: >"$tmp/empty.toml"
(
  cd "$tmp/run"
  exec env \
    -u DATABASE_URL -u PORT -u JWT_SECRET -u ADMIN_USERNAME -u GPT2API_CONFIG \
    GPT2API__SERVER__HOST=127.0.0.1 \
    GPT2API__SERVER__PORT="$port" \
    GPT2API__SERVER__DATA_DIR="$tmp/data" \
    DATABASE_PATH="$tmp/gw.db" \
    ADMIN_PASSWORD="$admin_password" \
    GPT2API__CODEX__BASE_URL="$mock_base_url" \
    GPT2API__CODEX__OAUTH_TOKEN_URL="$mock_oauth_url" \
    "$target_dir/debug/gpt2api" --config "$tmp/empty.toml"
) >"$tmp/gateway.log" 2>&1 &
gateway_pid=$!
wait_for 'curl -fsS -o /dev/null "$gateway_url/readyz" 2>/dev/null' 60 "$gateway_pid" "the gateway"

# --- Tests ---------------------------------------------------------------------------------------
rm -rf "$artifacts"
mkdir -p "$artifacts"
echo "== running the browser tests (screenshots in $artifacts)"
set +e
GPT2API_URL="$gateway_url" \
  GPT2API_ADMIN_PASSWORD="$admin_password" \
  GPT2API_MOCK_ACCOUNTS_FILE="$tmp/mock-accounts.json" \
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
