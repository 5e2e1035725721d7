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
cargo build --quiet --workspace --bin gpt2api --bin mock_upstream

# --- Processes -----------------------------------------------------------------------------------
source "$repo/tests/support/stack.sh"
stack_init sdk
stack_start_mock "$target_dir/debug" 2
stack_start_gateway "$target_dir/debug"

# --- Tests ---------------------------------------------------------------------------------------
echo "== running the SDK tests (openai $OPENAI_VERSION)"
set +e
GPT2API_URL="$gateway_url" \
  GPT2API_ADMIN_PASSWORD="$admin_password" \
  GPT2API_ACCOUNTS_FILE="$accounts_file" \
  "$venv/bin/python" -m pytest -p no:cacheprovider "$repo/tests/sdk/test_openai_sdk.py" "$@"
status=$?
set -e
exit "$status"
