"""/chat answers per second through HAProxy with 1, 2 and 4 replicas (deploy/cluster.py, Redis included).

Loopback only. The local Realtime server (the tests' stand-in, text answers at once) runs on a thread of this
process; `--clients` gradio_client callers, each its own conversation, send `--messages` messages one after
another, all callers at once. Answers/s = all answers / wall time; median of `--rounds` rounds per cluster.
Everything (replicas, HAProxy, Redis, the stand-in and the callers) shares this machine's cores, so the figures
show how far replicas help on one machine, not on several.

Run: python benchmarks/bench_cluster.py [--replicas 1 2 4] [--clients 16] [--messages 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from gradio_client import Client  # noqa: E402
from support.clusterhost import start_cluster, start_realtime_server  # noqa: E402


def conversation(client: Client, messages: int, round_no: int) -> None:
    for n in range(messages):
        text = f"質問{round_no}-{n}"
        reply = client.predict(text, api_name="/chat")
        assert reply == f"echo:{text}", reply


def measure(replicas: int, clients: int, messages: int, rounds: int, realtime_url: str) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as workdir:
        cluster = start_cluster(Path(workdir), realtime_url, replicas, voice_limit=4)
        try:
            with ThreadPoolExecutor(clients) as pool:
                callers = list(pool.map(lambda _: Client(cluster.url, verbose=False), range(clients)))
                list(pool.map(lambda c: c.predict("準備", api_name="/chat"), callers))  # connected first
                rates = []
                for round_no in range(rounds):
                    started = time.perf_counter()
                    list(pool.map(lambda c, r=round_no: conversation(c, messages, r), callers))
                    rates.append(clients * messages / (time.perf_counter() - started))
            return rates
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = start_realtime_server()
    print(f"{os.cpu_count()} コア、呼び出し元 {args.clients}、各 {args.messages} 通 × {args.rounds} 回")
    for replicas in args.replicas:
        rates = measure(replicas, args.clients, args.messages, args.rounds, url)
        print(f"レプリカ {replicas}: /chat {statistics.median(rates):.1f} 回答/秒 "
              f"（{min(rates):.1f}–{max(rates):.1f}）", flush=True)


if __name__ == "__main__":
    main()
