#!/usr/bin/env bash
# The pool-yield benchmark: how well the account pool spends its accounts (turns that keep
# their account, cached share of input against the ideal, upstream usage-limit refusals,
# requests served before the first client-visible 429, and no wait on a refresh while another
# account can serve), once per strategy, against the mock upstream's economy. See the section
# "Pool yield" in tests/bench/README.md; the program is examples/pool_yield.rs.
#
# Builds the program in release and runs it; the gateways and mocks run inside it, on loopback,
# each run on a fresh one. Prints a Markdown report on stdout (about a minute after the build).
#
# Knobs (environment; defaults in brackets):
#   POOL_YIELD_ARGS []   extra arguments, e.g. "--conversations 128 --turns 20 --accounts 8"
#                        (defaults: 64 conversations, 12 turns, 4 accounts, 4 at a time)
#   BENCH_NO_BUILD [0]   1 = use the program already built
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  echo "== building examples/pool_yield.rs in release" >&2
  cargo build --quiet --release --example pool_yield
fi
target_dir="${CARGO_TARGET_DIR:-target}"
# shellcheck disable=SC2086 # the extra arguments are words on purpose
exec "$target_dir/release/examples/pool_yield" ${POOL_YIELD_ARGS:-}
