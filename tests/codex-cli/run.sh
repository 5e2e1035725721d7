#!/usr/bin/env bash
# The real Codex CLI (pinned by tests/codex-cli/package-lock.json, its platform binary from npm)
# against the gateway and the mock Codex upstream, run as a user runs it: `codex exec` with a
# throw-away CODEX_HOME whose config.toml points a provider at the gateway.
#
# Installs the CLI with `npm ci` into target/codex-cli-node (no node_modules in the work tree),
# builds the gateway and the mock upstream, starts both on free ports with a throw-away
# configuration, imports the mock's accounts and creates an API key as an operator would
# (tests/clients/setup.mjs), then runs the scenarios, asserting on the CLI's output and on what
# the mock upstream received (GET /__mock/requests):
#   1. http        a custom provider over HTTP (supports_websockets = false), with the gateway's
#                  model catalog as model_catalog_url
#   2. tool        a tool-calling turn: the mock asks for a shell command, the CLI runs it and
#                  sends its output back
#   3. compaction  remote compaction (provider name "OpenAI", a small
#                  model_auto_compact_token_limit): a compaction_trigger request answered with a
#                  compaction item, which the next request starts from
#   4. websocket   supports_websockets = true: the turn must go over the WebSocket (the gateway's
#                  usage-log rows say transport "websocket"), not fall back to HTTP. Skipped when
#                  CODEX_CLI_SKIP_WS=1.
# Both processes are stopped on exit, whatever happens. Arguments name the scenarios to run
# (default: all), e.g. `bash tests/codex-cli/run.sh http tool`.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
node_dir="$target_dir/codex-cli-node"
scenarios=("$@")
if [ "${#scenarios[@]}" -eq 0 ]; then
  scenarios=(http tool compaction websocket)
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing node and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi

mkdir -p "$node_dir"
if ! cmp -s "$repo/tests/codex-cli/package-lock.json" "$node_dir/package-lock.json" \
  || [ ! -d "$node_dir/node_modules/@openai/codex" ]; then
  echo "== npm ci (@openai/codex, pinned by tests/codex-cli/package-lock.json)"
  cp "$repo/tests/codex-cli/package.json" "$repo/tests/codex-cli/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
codex="$node_dir/node_modules/.bin/codex"
echo "== $("$codex" --version)"

echo "== building the gateway and the mock upstream"
cargo build --quiet --workspace --bin gpt2api --bin mock_upstream

source "$repo/tests/support/stack.sh"
stack_init codexcli
stack_start_mock "$target_dir/debug" 2
stack_start_gateway "$target_dir/debug" GPT2API__CODEX__CATALOG_REFRESH_SECONDS=2
api_key="$(node "$repo/tests/clients/setup.mjs" "$gateway_url" "$admin_password" "$accounts_file")"
admin_token="$(curl -fsS -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$admin_password\"}" "$gateway_url/admin/login" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
work="$tmp/workspace"
mkdir -p "$work"

# The gateway fetches the upstream's catalog in the background: wait until it serves it.
echo "== waiting for the gateway to serve the upstream's model catalog"
catalog_served() {
  curl -fsS -H "authorization: Bearer $api_key" "$gateway_url/v1/codex/models?client_version=0" |
    grep -q '"codex-auto-review"'
}
stack_wait_for catalog_served 30 "$gateway_pid" "the gateway's model catalog" || exit 1

failures=0
fail() {
  echo "FAIL [$scenario]: $*" >&2
  failures=$((failures + 1))
}

# codex_home <name> <provider name> <supports_websockets> [extra top-level TOML lines...]:
# a fresh CODEX_HOME with a config.toml whose provider "gw" is the gateway; prints its path.
codex_home() {
  local home="$tmp/home-$1" provider="$2" websockets="$3"
  shift 3
  mkdir -p "$home"
  {
    echo 'model = "gpt-5.5"'
    echo 'model_provider = "gw"'
    echo 'approval_policy = "never"'
    printf '%s\n' "$@"
    echo
    echo '[model_providers.gw]'
    echo "name = \"$provider\""
    echo "base_url = \"$gateway_url/v1\""
    echo 'env_key = "GPT2API_KEY"'
    echo 'wire_api = "responses"'
    echo "supports_websockets = $websockets"
  } >"$home/config.toml"
  echo "$home"
}

# run_codex <home> <prompt>: `codex exec` in the workspace; the last message goes to
# $home/last.txt, the output to $home/out.txt. Fails the scenario when the CLI fails.
run_codex() {
  local home="$1" prompt="$2"
  if ! CODEX_HOME="$home" GPT2API_KEY="$api_key" RUST_LOG="${CODEX_CLI_LOG:-warn}" \
    timeout 180 "$codex" exec \
    --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox --color never \
    -C "$work" -o "$home/last.txt" "$prompt" >"$home/out.txt" 2>&1 </dev/null; then
    fail "codex exec failed; its output:"
    tail -n 40 "$home/out.txt" >&2
    return 1
  fi
}

# mock_requests <file>: the mock's recent responses requests, as JSON, into <file>.
mock_requests() {
  curl -fsS "$mock_root_url/__mock/requests?n=200" >"$1"
}

# check <description> <python expression over `reqs` (the mock's requests), `last` (the CLI's
# last message) and `out` (its output)>: fails the scenario when the expression is false.
check() {
  local what="$1" expr="$2" home="$3"
  mock_requests "$home/requests.json"
  if ! python3 - "$home" "$expr" <<'EOF'; then
import json, sys
home, expr = sys.argv[1], sys.argv[2]
reqs = json.load(open(f"{home}/requests.json"))
last = open(f"{home}/last.txt").read() if __import__("os").path.exists(f"{home}/last.txt") else ""
out = open(f"{home}/out.txt").read()
def items(req): return req["body"].get("input", [])
def types(req): return [i.get("type") for i in items(req)]
sys.exit(0 if eval(expr) else 1)
EOF
    fail "$what"
  fi
}

reset_mock() {
  curl -fsS -X POST "$mock_root_url/__mock/reset" >/dev/null
}

for scenario in "${scenarios[@]}"; do
  case "$scenario" in
  http)
    echo "== 1. a custom provider over HTTP, with the gateway's model catalog"
    reset_mock
    home="$(codex_home http gw false \
      "[features]" "api_key_model_discovery = true")"
    # model_catalog_url belongs to the provider table, written last.
    echo "model_catalog_url = \"$gateway_url/v1/codex/models\"" >>"$home/config.toml"
    run_codex "$home" "Say hello to the gateway" || continue
    check "the answer is the mock's" '"Hello from mock-account-" in last and "hello to the gateway" in last' "$home"
    check "one request went upstream, over HTTP, streamed" 'len(reqs) == 1 and reqs[0]["body"]["stream"] is True' "$home"
    check "the CLI's headers reached the upstream" \
      'all(reqs[0]["headers"].get(h) for h in ["session-id", "thread-id", "x-client-request-id", "x-codex-window-id"])' "$home"
    check "no previous_response_id, store false, the CLI's fields kept" \
      '"previous_response_id" not in reqs[0]["body"] and reqs[0]["body"]["store"] is False and "client_metadata" in reqs[0]["body"] and reqs[0]["body"]["prompt_cache_key"]' "$home"
    # 0.171 sends a catalog model's base instructions as the first developer message.
    check "the instructions come from the upstream catalog served by the gateway" \
      '"You are a mock model." in (reqs[0]["body"]["instructions"] + json.dumps(items(reqs[0])[:1]))' "$home"
    ;;
  tool)
    echo "== 2. a tool-calling turn"
    reset_mock
    home="$(codex_home tool gw false)"
    run_codex "$home" "Check the workspace [mock:exec:echo gpt2api-tool-ran]" || continue
    check "the follow-up carried the command's output" \
      'len(reqs) == 2 and types(reqs[1])[-1] == "function_call_output" and "gpt2api-tool-ran" in json.dumps(items(reqs[1])[-1])' "$home"
    check "the call went back with its output, in order" \
      '[i["type"] for i in items(reqs[1])][-2:] == ["function_call", "function_call_output"]' "$home"
    check "the CLI showed the answer to the tool result" '"Tool result" in last and "gpt2api-tool-ran" in last' "$home"
    ;;
  compaction)
    echo "== 3. remote compaction"
    reset_mock
    home="$(codex_home compaction OpenAI false 'model_auto_compact_token_limit = 10')"
    run_codex "$home" "Look around [mock:exec:echo compact-me]" || continue
    check "a compaction request went upstream with compaction_trigger last" \
      'any(types(r) and types(r)[-1] == "compaction_trigger" for r in reqs)' "$home"
    check "the request after it starts from the compaction item" \
      'any("compaction" in types(r) and types(r)[-1] != "compaction_trigger" for r in reqs)' "$home"
    # The mock's encrypted_content is the base64 of a text naming the item's own id.
    check "the compaction item came back unchanged" '(
  all(__import__("base64").b64decode(i["encrypted_content"]).decode().endswith(i["id"])
      for r in reqs for i in items(r) if i.get("type") == "compaction")
  and any(i.get("type") == "compaction" for r in reqs for i in items(r)))' "$home"
    ;;
  websocket)
    if [ "${CODEX_CLI_SKIP_WS:-}" = "1" ]; then
      echo "== 4. over WebSocket: skipped (CODEX_CLI_SKIP_WS=1)"
      continue
    fi
    echo "== 4. a custom provider over WebSocket"
    reset_mock
    home="$(codex_home websocket gw true)"
    # To the nanosecond: the rows of the scenario before may share its second.
    started="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
    run_codex "$home" "Say hello over the socket" || continue
    check "the answer is the mock's" '"Hello from mock-account-" in last' "$home"
    # The usage log is written in batches: wait (at most 10 s) for the turn's rows.
    verdict=1
    for _ in $(seq 1 40); do
      curl -fsS -H "authorization: Bearer $admin_token" \
        "$gateway_url/admin/logs?page_size=100&since=$started" >"$home/logs.json"
      verdict=0
      python3 - "$home/logs.json" <<'EOF' || verdict=$?
import json, sys
rows = json.load(open(sys.argv[1]))["data"]
rows = [r for r in rows if r.get("endpoint") == "/v1/responses"]
# 2: no row yet; 1: a row that came over HTTP; 0: every row came over the WebSocket.
sys.exit(2 if not rows else 0 if all(r.get("transport") == "websocket" for r in rows) else 1)
EOF
      [ "$verdict" -eq 2 ] || break
      sleep 0.25
    done
    if [ "$verdict" -eq 2 ]; then
      fail "no log row of the turn within 10 s"
    elif [ "$verdict" -ne 0 ]; then
      fail "the turn went over HTTP (the gateway's log rows do not say transport websocket)"
    fi
    ;;
  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
  esac
done

if [ "$failures" -ne 0 ]; then
  echo "== $failures check(s) failed" >&2
  exit 1
fi
echo "== the Codex CLI scenarios passed"
