#!/usr/bin/env python3
"""The gateway's CPU per request, by stage, from a `perf record --call-graph dwarf` profile.

    perf script -i perf-stream-gateway-max.data | python3 tests/bench/stages.py --us-per-request 120

The stages are tried in order; the first with a frame anywhere in a sample's stack takes the
sample, so a `malloc` or a kernel `tcp_sendmsg` counts for the stage that caused it. The
stages are those of a request's life (tests/bench/README.md). With `--us-per-request` (the
gateway's CPU time per request, from the benchmark's report) each share is also given in
microseconds. `--top N` lists the N leaf functions with most samples.
"""

import argparse
import collections
import re
import sys

# (stage, pattern): the first pattern to match a frame, leaf first, names its stage.
STAGES = [
    ("usage-log writer: SQLite", r"sqlite3|sqlx_sqlite|libsqlite"),
    ("usage-log writer: batching", r"gpt2api::actors::usage_log|gpt2api::usage_history"),
    ("log record (per request)", r"gpt2api::request_log|gpt2api::metrics"),
    ("auth + key limits", r"gpt2api::actors::key_cache|gpt2api::limits|extract::authenticate|"
     r"ApiKeyAuth|hash_key|sha2::"),
    ("pool checkout + report", r"gpt2api::actors::account_pool|gpt2api::affinity"),
    ("conversation key + hints", r"gpt2api::conversation"),
    # The upstream's answer (its rate-limit headers, SSE decoding, each event's JSON) before
    # what the handler makes of it: the relay's loop holds both.
    ("upstream answer: headers, decode + parse", r"gpt2api::codex::sse::SseDecoder|"
     r"gpt2api::dispatch::events|StreamEvent|gpt2api::codex::wire"),
    ("answer: translate + encode", r"gpt2api::codex::chat_stream|gpt2api::codex::aggregate|"
     r"Relay>::on_frame|Aggregate>::on_frame|Aggregate>::finish|ChatCompletionChunk|"
     r"encode_frame|encode_json|serve::relay|serve::aggregate|serve::collect"),
    ("request read + translation", r"gpt2api::codex::translate|gpt2api::codex::openai|"
     r"OpenAiJson|Endpoint>::translate|serve::Upstream|estimate_tokens|"
     r"gpt2api::http::v1::chat|gpt2api::catalog"),
    ("upstream HTTP client (reqwest, hyper, rustls)", r"reqwest::|hyper_util::client|"
     r"hyper::client|hyper::proto::h1::role::Client|h2::|rustls"),
    ("dispatch (attempts, verdicts)", r"gpt2api::dispatch"),
    ("actor mailboxes, wake-ups", r"actix::|tokio::sync::|futures_channel|eventfd|"
     r"gpt2api::actors::"),
    ("client HTTP server (actix-web)", r"actix_http|actix_server|actix_web|actix_router|"
     r"tracing_actix_web|hyper::proto"),
    ("serde_json (elsewhere)", r"serde_json"),
    ("runtime: scheduling, idle, epoll", r"tokio::runtime|mio::|epoll|schedule|"
     r"futex|finish_task_switch"),
]
COMPILED = [(stage, re.compile(pattern)) for stage, pattern in STAGES]


def samples(lines):
    """Yields (thread name, [symbol, leaf first]) per sample of `perf script` output."""
    comm, frames = None, []
    for line in lines:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif not line[0].isspace():
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                frames.append(parts[1])
    if comm is not None:
        yield comm, frames


def classify(frames):
    # The stages in order: the first whose pattern matches any frame of the stack wins, so the
    # gateway's own code claims the library and kernel time it causes.
    for stage, pattern in COMPILED:
        if any(pattern.search(frame) for frame in frames):
            return stage
    return "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--us-per-request", type=float, default=None)
    ap.add_argument("--top", type=int, default=0)
    args = ap.parse_args()
    stages, leaves, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for comm, frames in samples(sys.stdin):
        total += 1
        stages[classify(frames)] += 1
        threads[comm] += 1
        if frames:
            leaves[re.sub(r"\+0x[0-9a-f]+", "", frames[0])] += 1
    if not total:
        sys.exit("no samples")
    print(f"{total} samples\n")
    header = "| stage | share |" + (" us per request |" if args.us_per_request else "")
    print(header)
    print("| --- | ---: |" + (" ---: |" if args.us_per_request else ""))
    for stage, n in stages.most_common():
        row = f"| {stage} | {n / total * 100:.1f}% |"
        if args.us_per_request:
            row += f" {n / total * args.us_per_request:.1f} |"
        print(row)
    print("\n| thread | share |\n| --- | ---: |")
    for comm, n in threads.most_common(8):
        print(f"| {comm} | {n / total * 100:.1f}% |")
    if args.top:
        print("\n| leaf function | share |\n| --- | ---: |")
        for leaf, n in leaves.most_common(args.top):
            print(f"| `{leaf[:100]}` | {n / total * 100:.1f}% |")


if __name__ == "__main__":
    main()
