"""Load on the OpenAI-compatible server: many concurrent clients, every reply checked.

    python benchmarks/server_load.py [--requests 200] [--clients 16] [--max-tokens 3] [--seeds 8]
                                     [--base-url http://127.0.0.1:8000/v1 --api-key KEY]

Without --base-url it loads the default model and serves it from a background thread of this
process (engine.serve on a free port). First one reply per seed is generated sequentially (the
reference); then --requests requests (half streamed, seeded, temperature 1.2) come from --clients
threads at once, and each reply must equal its seed's reference: a mixed-up, cut-off or
cross-interrupted reply fails the run. Prints latency p50/p99 (from sending to the last byte),
time to first streamed chunk, and throughput. The engine runs one generation at a time, so latency
grows with the queue: on lavapipe a request costs seconds and the full run takes a long time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import openai

PROMPT = [{"role": "user", "content": "Hi"}]  # one prompt: after the first request, prefill is one token


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8, help="distinct seeds (each has a sequential reference)")
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

        def run(i: int):
            seed = seeds[i % len(seeds)]
            return (seed, *one_request(client, model, seed, args.max_tokens, stream=bool(i % 2)))

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(run, range(args.requests)))
        wall = time.perf_counter() - t0
    finally:
        if server is not None:
            server.stop()

    wrong = [(seed, text) for seed, text, _, _ in results if text != reference[seed]]
    latencies = sorted(r[2] for r in results)
    first_chunks = sorted(r[3] for i, r in enumerate(results) if i % 2)
    print(f"{args.requests} requests from {args.clients} clients, max_tokens {args.max_tokens}, in {wall:.1f} s "
          f"({args.requests / wall:.2f} requests/s)")
    print(f"latency p50 {statistics.median(latencies):.2f} s, p99 {percentile(latencies, 0.99):.2f} s; "
          f"first streamed chunk p50 {statistics.median(first_chunks):.2f} s")
    print(f"replies equal to their seed's reference: {len(results) - len(wrong)}/{len(results)}")
    for seed, text in wrong[:5]:
        print(f"  seed {seed}: got {text!r}, expected {reference[seed]!r}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
