# The test stack shared by tests/sdk/run.sh, tests/e2e/run.sh and tests/bench/run.sh: the mock
# Codex upstream (the mock_upstream binary of mock-upstream/) and the gateway binary, started on
# free loopback ports with a throw-away configuration, and stopped again whatever happens.
#
# Sourced (`source "$repo/tests/support/stack.sh"`) by a script that runs with
# `set -euo pipefail`; defines functions and variables only, starts nothing. In order:
#   stack_init <name>                                     temp dir + cleanup
#   stack_start_mock <binary dir> <accounts> [mock args...]
#   stack_start_gateway <binary dir> [-u NAME | NAME=value]...
# where <binary dir> is the cargo profile's output directory, e.g. "$target_dir/debug".
#
# Progress lines go to stdout (a script whose stdout is a report sends them to /dev/null with
# `stack_start_mock ... >/dev/null`: the functions run in the calling shell all the same);
# errors go to stderr, and a process that does not get ready ends the script with status 1.
#
# Variables set for the script:
#   tmp              the temp directory, removed on success; it holds gateway.log (the gateway's
#                    output), gw.db (its SQLite database), mock.log, mock.out, and run/, the
#                    gateway's working directory
#   mock_pid, gateway_pid                  the two processes ("" before they start; a script
#                                          that stops one itself sets it back to "")
#   mock_line                              the mock's `MOCK_UPSTREAM base_url=...` line
#   mock_base_url, mock_oauth_url, mock_root_url   the mock's addresses, from that line
#   accounts_file                          the mock's accounts, in the gateway's import format
#   gateway_url, admin_password            where the gateway listens; the admin's password
# Set by the script when it needs to, before it exits:
#   stack_pid_vars   names of the variables holding the pids the cleanup stops, in that order
#                    (default: gateway_pid mock_pid); a script adds its own helpers here
#   stack_on_failure a function (see below) that a script may redefine after sourcing

stack_pid_vars=(gateway_pid mock_pid)
mock_pid=""
gateway_pid=""

# stack_init <name>: creates $tmp (gpt2api-<name>.XXXXXX under $TMPDIR or /tmp) and installs
# the cleanup on EXIT (once; INT and TERM exit with 130 and 143, which runs it too). <name> also
# starts the admin password ("sdk" -> "Sdk-...").
stack_init() {
  stack_name="$1"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/gpt2api-$stack_name.XXXXXX")"
  if [ -z "${stack_cleanup_installed:-}" ]; then
    trap stack_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    stack_cleanup_installed=1
  fi
}

# The EXIT trap: stops the processes named by stack_pid_vars (SIGTERM to all, then waits for
# each), then removes $tmp on success, or on failure calls stack_on_failure, which keeps $tmp
# when it returns 0. Exits with the script's status.
stack_cleanup() {
  local status=$? name pid
  for name in "${stack_pid_vars[@]}"; do
    pid="${!name:-}"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
  done
  for name in "${stack_pid_vars[@]}"; do
    pid="${!name:-}"
    if [ -n "$pid" ]; then
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ "$status" -ne 0 ] && stack_on_failure; then
    :
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}

# stack_on_failure: what the cleanup shows when the script fails; returns 0 to keep $tmp, 1 to
# have it removed. This default shows the end of the gateway log and keeps $tmp when the gateway
# was started, and removes $tmp otherwise.
stack_on_failure() {
  [ -f "$tmp/gateway.log" ] || return 1
  echo "== last lines of the gateway log ($tmp/gateway.log kept)" >&2
  tail -n 40 "$tmp/gateway.log" >&2 || true
}

# stack_wait_for <check> <seconds> <pid> <what>: waits up to <seconds> for the shell command
# <check> to succeed; fails, saying so on stderr, when it does not or when process <pid> dies
# meanwhile.
stack_wait_for() {
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
    sleep 0.1
  done
}

# stack_start_mock <binary dir> <accounts> [mock args...]: starts <binary dir>/mock_upstream on
# a free port with <accounts> accounts (written to $accounts_file) and the extra arguments
# (e.g. --fast), waits for its MOCK_UPSTREAM line and sets mock_pid, mock_line,
# mock_base_url, mock_oauth_url, mock_root_url and accounts_file. When the mock does not get
# ready, shows its log on stderr and exits 1.
stack_start_mock() {
  local bin="$1" accounts="$2"
  shift 2
  accounts_file="$tmp/accounts.json"
  echo "== starting the mock upstream"
  "$bin/mock_upstream" --port 0 --accounts "$accounts" "$@" \
    --accounts-out "$accounts_file" >"$tmp/mock.out" 2>"$tmp/mock.log" &
  mock_pid=$!
  stack_wait_for 'grep -qs "^MOCK_UPSTREAM " "$tmp/mock.out"' 30 "$mock_pid" "the mock upstream" || {
    cat "$tmp/mock.log" >&2
    exit 1
  }
  mock_line="$(grep -m1 '^MOCK_UPSTREAM ' "$tmp/mock.out")"
  mock_base_url="$(stack_mock_field base_url)"
  mock_oauth_url="$(stack_mock_field oauth_url)"
  mock_root_url="$(stack_mock_field root_url)"
  echo "   $mock_line"
}

# stack_mock_field <name>: the value of <name>=... in $mock_line.
stack_mock_field() {
  tr ' ' '\n' <<<"$mock_line" | sed -n "s/^$1=//p"
}

# stack_start_gateway <binary dir> [-u NAME | NAME=value]...: starts <binary dir>/gpt2api on a
# free loopback port, from $tmp/run with an empty --config file, configured by the environment
# only: SQLite database $tmp/gw.db, data dir $tmp/data, a fresh strong ADMIN_PASSWORD, the mock
# as the Codex upstream and OAuth token endpoint, and none of the caller's DATABASE_URL, PORT,
# JWT_SECRET, ADMIN_USERNAME, GPT2API_CONFIG. The extra words unset (-u NAME) or set (NAME=value,
# after the ones above, so they win) more variables. Output goes to $tmp/gateway.log. Waits for
# /readyz (60 s at most, else exits 1) and sets gateway_pid, gateway_url and admin_password.
# Needs python3 on PATH (free port, password).
stack_start_gateway() {
  local bin="$1" port
  shift
  local unset_opts=() assignments=()
  while [ "$#" -gt 0 ]; do
    if [ "$1" = -u ]; then
      unset_opts+=(-u "$2")
      shift 2
    else
      assignments+=("$1")
      shift
    fi
  done
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
  admin_password="$(python3 -c 'import secrets, sys; print(sys.argv[1] + "-" + secrets.token_urlsafe(18) + "-9aZ")' "${stack_name^}")"
  gateway_url="http://127.0.0.1:$port"
  echo "== starting the gateway on $gateway_url"
  mkdir -p "$tmp/run"
  : >"$tmp/empty.toml"
  (
    cd "$tmp/run"
    exec env \
      -u DATABASE_URL -u PORT -u JWT_SECRET -u ADMIN_USERNAME -u GPT2API_CONFIG "${unset_opts[@]}" \
      GPT2API__SERVER__HOST=127.0.0.1 \
      GPT2API__SERVER__PORT="$port" \
      GPT2API__SERVER__DATA_DIR="$tmp/data" \
      DATABASE_PATH="$tmp/gw.db" \
      ADMIN_PASSWORD="$admin_password" \
      GPT2API__CODEX__BASE_URL="$mock_base_url" \
      GPT2API__CODEX__OAUTH_TOKEN_URL="$mock_oauth_url" \
      "${assignments[@]}" \
      "$bin/gpt2api" --config "$tmp/empty.toml"
  ) >"$tmp/gateway.log" 2>&1 &
  gateway_pid=$!
  stack_wait_for 'curl -fsS -o /dev/null "$gateway_url/readyz" 2>/dev/null' 60 "$gateway_pid" "the gateway" ||
    exit 1
}
