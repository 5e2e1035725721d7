#!/usr/bin/env bash
# JavaScript client libraries against a running gateway: openai-node and the Vercel AI SDK
# (`ai` + `@ai-sdk/openai`), with node's test runner.
#
# Installs the pinned packages with `npm ci` (into target/clients-node, so that no node_modules
# folder lands in the work tree), builds the gateway and the mock Codex upstream, starts both on
# free ports with a throw-away configuration (temp directory, SQLite database there), waits for
# /readyz, signs in as admin, imports the mock's accounts and creates an API key (setup.mjs),
# then runs tests/clients/*.test.mjs with `node --test`. Both processes are stopped on exit,
# whatever happens. Exits with the test runner's status.
#
# Extra arguments go to `node --test`, e.g. `bash tests/clients/run.sh --test-name-pattern=tool`.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
node_dir="$target_dir/clients-node"
here="$repo/tests/clients"

# The gateway and the mock upstream, built in the cargo profile's output directory (debug).
build_stack() {
  cargo build --quiet --workspace --bin gpt2api --bin mock_upstream
}

# --- Node and the client libraries ----------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing node and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi

mkdir -p "$node_dir"
if ! cmp -s "$here/package-lock.json" "$node_dir/package-lock.json" \
  || [ ! -d "$node_dir/node_modules/openai" ]; then
  echo "== npm ci (openai, ai, @ai-sdk/openai, zod, pinned by tests/clients/package-lock.json)"
  cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
# Next to node_modules, so that its imports resolve there.
cp "$here/deps.mjs" "$node_dir/deps.mjs"

# --- Build ---------------------------------------------------------------------------------------
echo "== building the gateway and the mock upstream"
build_stack

# --- Processes -----------------------------------------------------------------------------------
source "$repo/tests/support/stack.sh"
stack_init clients
stack_start_mock "$target_dir/debug" 2
stack_start_gateway "$target_dir/debug"

echo "== signing in, importing the mock's accounts, creating an API key"
api_key="$(node "$here/setup.mjs" "$gateway_url" "$admin_password" "$accounts_file")"

# --- Tests ---------------------------------------------------------------------------------------
# One file at a time: the tests look at the mock's last request, which another file could change.
echo "== running the client tests (node $(node --version); $(cd "$node_dir" && node -p \
  'const d = require("./package.json").devDependencies; Object.entries(d).map(([n, v]) => `${n} ${v}`).join(", ")'))"
set +e
GPT2API_URL="$gateway_url" \
  GPT2API_API_KEY="$api_key" \
  GPT2API_MOCK_ROOT_URL="$mock_root_url" \
  CLIENTS_NODE_DIR="$node_dir" \
  node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tmp/results.tap" "$@" "$here"/*.test.mjs
status=$?
set -e
# The runner's summary (the spec reporter prints it too, without the `# ` prefix).
grep -E '^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$tmp/results.tap" || true
exit "$status"
