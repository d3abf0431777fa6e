"""MCP tools: start-up of the configured servers, a call's round trip, and cancel → the server noticing it.

Servers: mcp-server-time (PyPI) and the tests' slow server (tests/support/mcp_slow_server.py), both over stdio,
through the app's own tool path (mcp_tools.app_toolbox, the ToolRunner). The server notes its cancellation
in its event file; the figure is the time from `runner.cancel()` to that line.

Run: python benchmarks/bench_mcp.py            (5 rounds; the figures are medians)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from conversation.tool_runner import ToolRunner  # noqa: E402
from mcp_tools import app_toolbox  # noqa: E402
from settings import Settings  # noqa: E402

ROUNDS = 5


async def one_round(toolbox, events: Path) -> tuple[float, float]:
    ended = asyncio.Event()

    async def on_end(call) -> None:
        assert call.status in ("done", "cancelled"), call.output
        ended.set()

    runner = ToolRunner(toolbox, lambda _call: None, on_end)
    started = time.perf_counter()
    runner.start("time", "time_get_current_time", json.dumps({"timezone": "Asia/Tokyo"}), set())
    await ended.wait()
    round_trip = time.perf_counter() - started
    events.write_text("", encoding="utf-8")
    ended.clear()
    runner.start("slow", "slow_count", json.dumps({"steps": 100, "seconds_per_step": 0.05}), set())
    while "progress 2/100" not in events.read_text(encoding="utf-8"):
        await asyncio.sleep(0.005)
    cancelled = time.perf_counter()
    runner.cancel("slow_count")
    while "cancelled" not in events.read_text(encoding="utf-8"):
        await asyncio.sleep(0.002)
    seen = time.perf_counter() - cancelled
    await ended.wait()
    return round_trip, seen


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    events = folder / "events"
    config = folder / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "time": {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "Asia/Tokyo"]},
        "slow": {"command": sys.executable, "args": [str(ROOT / "tests" / "support" / "mcp_slow_server.py")],
                 "env": {"MCP_TEST_EVENTS": str(events)}},
    }}), encoding="utf-8")
    starts, trips, cancels = [], [], []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        toolbox = app_toolbox(Settings(mcp_config=str(config)))
        starts.append(time.perf_counter() - began)
        try:
            trip, seen = asyncio.run(one_round(toolbox, events))
        finally:
            toolbox.close()
        trips.append(trip)
        cancels.append(seen)
    print(f"start-up of 2 stdio servers: median {statistics.median(starts):.2f} s")
    print(f"time_get_current_time call:  median {statistics.median(trips) * 1000:.1f} ms")
    print(f"cancel → server noticed:     median {statistics.median(cancels) * 1000:.1f} ms "
          f"(max {max(cancels) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
