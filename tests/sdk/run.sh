#!/usr/bin/env bash
# End-to-end test with the official OpenAI Python SDK against a running gateway.
#
# Creates a virtualenv (target/sdk-venv) with pinned `openai` and `pytest`, builds the gateway
# and the mock Codex upstream, starts both on free ports with a throw-away configuration (temp
# directory, SQLite database there), waits for /readyz, then runs tests/sdk/test_openai_sdk.py.
# Both processes are stopped on exit, whatever happens. Exits with pytest's status.
#
# Extra arguments go to pytest, e.g. `bash tests/sdk/run.sh -k tool_call -v`.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"

OPENAI_VERSION="3.57.0"
PYTEST_VERSION="9.2.0"
PYTHON="${PYTHON:-python3}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
venv="$target_dir/sdk-venv"

# --- Python environment -------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating the virtualenv $venv"
  "$PYTHON" -m venv "$venv"
fi
if ! "$venv/bin/python" - "$OPENAI_VERSION" "$PYTEST_VERSION" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if (version("openai"), version("pytest")) == (sys.argv[1], sys.argv[2]) else 1)
EOF
  echo "== installing openai==$OPENAI_VERSION pytest==$PYTEST_VERSION"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "openai==$OPENAI_VERSION" "pytest==$PYTEST_VERSION"
fi

# --- Build ---------------------------------------------------------------------------------------
echo "== building the gateway and the mock upstream"
cargo build --quiet --bin gpt2api --example mock_upstream

# --- Processes -----------------------------------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gpt2api-sdk.XXXXXX")"
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
  --accounts-out "$tmp/accounts.json" >"$tmp/mock.out" 2>"$tmp/mock.log" &
mock_pid=$!
wait_for 'grep -q "^MOCK_UPSTREAM " "$tmp/mock.out"' 30 "$mock_pid" "the mock upstream" || {
  cat "$tmp/mock.log" >&2
  exit 1
}
mock_line="$(grep -m1 '^MOCK_UPSTREAM ' "$tmp/mock.out")"
field() { tr ' ' '\n' <<<"$mock_line" | sed -n "s/^$1=//p"; }
mock_base_url="$(field base_url)"
mock_oauth_url="$(field oauth_url)"
echo "   $mock_line"

port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
admin_password="$("$venv/bin/python" -c 'import secrets; print("Sdk-" + secrets.token_urlsafe(18) + "-9aZ")')"
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
echo "== running the SDK tests (openai $OPENAI_VERSION)"
set +e
GPT2API_URL="$gateway_url" \
  GPT2API_ADMIN_PASSWORD="$admin_password" \
  GPT2API_ACCOUNTS_FILE="$tmp/accounts.json" \
  "$venv/bin/python" -m pytest -p no:cacheprovider "$repo/tests/sdk/test_openai_sdk.py" "$@"
status=$?
set -e
exit "$status"
