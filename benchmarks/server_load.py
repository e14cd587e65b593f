"""Load on the OpenAI-compatible server: many concurrent clients, every reply checked.

    python benchmarks/server_load.py [--requests 200] [--clients 16] [--max-tokens 3] [--seeds 8]
                                     [--time-limit SECONDS] [--base-url http://127.0.0.1:8000/v1 --api-key KEY]

Without --base-url it loads the default model and serves it from a background thread of this
process (engine.serve on a free port). First one reply per seed is generated sequentially (the
reference); then --requests requests (half streamed, seeded, temperature 1.2) come from --clients
threads at once, and each reply must equal its seed's reference: a mixed-up, cut-off or
cross-interrupted reply is a mismatch, an exception (HTTP error, broken stream) a failure, and
either fails the run. Prints latency p50/p99 (from sending to the last byte), time to first
streamed chunk, throughput, and the counts of matched, mismatched, failed and unsent requests.

The engine runs one generation at a time, so latency grows with the queue: on lavapipe a request
costs seconds and 200 requests take many minutes. `--time-limit` stops sending new requests once
that many seconds of the concurrent phase have passed (those already sent finish and are
checked); the ones never sent are counted as unsent, so a shortened run says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import openai

PROMPT = [{"role": "user", "content": "Hi"}]  # one prompt: after the first request, prefill is one token
PROGRESS_EVERY = 20  # print a line after this many finished requests


@dataclass(frozen=True)
class Outcome:
    """One request of the concurrent phase: its reply, or the error that ended it, or not sent."""

    index: int
    seed: int
    stream: bool
    text: str | None = None
    seconds: float = 0.0  # sending to the last byte
    first_chunk_s: float = 0.0  # sending to the first streamed chunk (= seconds when not streamed)
    error: str | None = None
    sent: bool = True


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in [0, 1])."""
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


def one_request(client: openai.OpenAI, model: str, seed: int, max_tokens: int, stream: bool) -> tuple[str, float, float]:
    """(text, seconds to the last byte, seconds to the first chunk)."""
    args = dict(model=model, messages=PROMPT, max_tokens=max_tokens, temperature=1.2, seed=seed)
    started = time.perf_counter()
    if not stream:
        text = client.chat.completions.create(**args).choices[0].message.content
        elapsed = time.perf_counter() - started
        return text, elapsed, elapsed
    parts, first = [], None
    for chunk in client.chat.completions.create(**args, stream=True):
        first = first or time.perf_counter() - started
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
    return "".join(parts), time.perf_counter() - started, first


class LoadRun:
    """The concurrent phase: `requests` requests from a pool of `clients` threads, stopping new sends
    after `time_limit` seconds."""

    _lock: threading.Lock  # guards finished (the progress counter)

    def __init__(self, client: openai.OpenAI, model: str, seeds: list[int], max_tokens: int,
                 time_limit: float | None):
        self.client, self.model, self.seeds, self.max_tokens = client, model, seeds, max_tokens
        self.time_limit = time_limit
        self._lock = threading.Lock()
        self.finished = 0
        self.started = 0.0

    def run(self, requests: int, clients: int) -> list[Outcome]:
        self.started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(self.one, range(requests)))

    def one(self, index: int) -> Outcome:
        seed, stream = self.seeds[index % len(self.seeds)], bool(index % 2)
        if self.time_limit is not None and time.perf_counter() - self.started > self.time_limit:
            return Outcome(index, seed, stream, sent=False)
        try:
            text, seconds, first = one_request(self.client, self.model, seed, self.max_tokens, stream)
            outcome = Outcome(index, seed, stream, text, seconds, first)
        except Exception as error:  # noqa: BLE001 — counted and reported, the other requests go on
            outcome = Outcome(index, seed, stream, error=f"{type(error).__name__}: {error}")
        with self._lock:
            self.finished += 1
            if self.finished % PROGRESS_EVERY == 0:
                print(f"  {self.finished} finished after {time.perf_counter() - self.started:.0f} s", flush=True)
        return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8, help="distinct seeds (each has a sequential reference)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="send no new request after this many seconds of the concurrent phase (default: none)")
    parser.add_argument("--base-url", default=None, help="an already running server (default: start one here)")
    parser.add_argument("--api-key", default="unused")
    args = parser.parse_args()

    server = None
    if args.base_url is None:
        from notebook_llm import create_engine

        server = create_engine().serve(port=0, max_queue=max(64, args.clients))
        base_url = server.url
    else:
        base_url = args.base_url
    client = openai.OpenAI(base_url=base_url, api_key=args.api_key, max_retries=0, timeout=3600)
    model = client.models.list().data[0].id
    seeds = [1000 + i for i in range(args.seeds)]
    try:
        t0 = time.perf_counter()
        reference = {seed: one_request(client, model, seed, args.max_tokens, False)[0] for seed in seeds}
        print(f"{len(seeds)} sequential references in {time.perf_counter() - t0:.1f} s; "
              f"{len(set(reference.values()))} distinct replies", flush=True)
        load = LoadRun(client, model, seeds, args.max_tokens, args.time_limit)
        results = load.run(args.requests, args.clients)
        wall = time.perf_counter() - load.started
    finally:
        if server is not None:
            server.stop()
    return report(args, results, reference, wall)


def report(args: argparse.Namespace, results: list[Outcome], reference: dict[int, str], wall: float) -> int:
    sent = [r for r in results if r.sent]
    failed = [r for r in sent if r.error is not None]
    answered = [r for r in sent if r.error is None]
    wrong = [r for r in answered if r.text != reference[r.seed]]
    print(f"{len(sent)} of {args.requests} requests sent from {args.clients} clients, max_tokens {args.max_tokens}, "
          f"in {wall:.1f} s ({len(sent) / wall:.2f} requests/s)")
    if answered:
        latencies = sorted(r.seconds for r in answered)
        first_chunks = sorted(r.first_chunk_s for r in answered if r.stream) or [float("nan")]
        print(f"latency p50 {statistics.median(latencies):.2f} s, p99 {percentile(latencies, 0.99):.2f} s, "
              f"max {latencies[-1]:.2f} s; first streamed chunk p50 {statistics.median(first_chunks):.2f} s")
    print(f"matched {len(answered) - len(wrong)}, mismatched {len(wrong)}, failed {len(failed)}, "
          f"unsent {len(results) - len(sent)} (time limit)")
    for r in wrong[:5]:
        print(f"  request {r.index} seed {r.seed}: got {r.text!r}, expected {reference[r.seed]!r}", file=sys.stderr)
    for r in failed[:5]:
        print(f"  request {r.index} seed {r.seed} failed: {r.error}", file=sys.stderr)
    return 1 if wrong or failed else 0


if __name__ == "__main__":
    sys.exit(main())
