"""Time from `python app.py` to the page being served (median of several cold starts).

Run: python benchmarks/bench_startup.py [runs]
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_start(env: dict[str, str]) -> float:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("app did not start within 60 s")
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_OPENAI", "OPENAI"))}
    for label, extra in [
        ("offline (no credentials)", {"REALTIME_PROVIDER": "offline"}),
        ("azure (connects on first page load)", {"REALTIME_PROVIDER": "azure",
                                                  "AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com",
                                                  "AZURE_OPENAI_API_KEY": "placeholder",
                                                  "AZURE_OPENAI_DEPLOYMENT": "gpt-realtime"}),
    ]:
        times = [one_start({**base, **extra}) for _ in range(runs)]
        print(f"{label:<40} median {statistics.median(times):.2f} s  (min {min(times):.2f}, max {max(times):.2f}, "
              f"n={runs})")


if __name__ == "__main__":
    main()
