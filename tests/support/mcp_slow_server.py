"""An MCP server of our own for the tests, written with the SDK: a slow tool that reports progress and
notices cancellation. Each event is appended as a line to the file named by MCP_TEST_EVENTS, so a test sees
what the server saw (started, progress, cancelled, finished) through its own channel.

Run: python tests/support/mcp_slow_server.py [stdio | http PORT]
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("slow-test-server")


def note(event: str) -> None:
    path = os.environ.get("MCP_TEST_EVENTS")
    if path:
        with open(path, "a", encoding="utf-8") as events:
            events.write(event + "\n")


@server.tool()
async def slow_count(steps: int, ctx: Context, seconds_per_step: float = 0.5) -> str:
    """Counts to `steps`, one step at a time, reporting progress after each step."""
    note(f"started {steps}")
    try:
        for done in range(1, steps + 1):
            await asyncio.sleep(seconds_per_step)
            await ctx.report_progress(done, steps, f"{done}件目を処理しました")
            note(f"progress {done}/{steps}")
    except asyncio.CancelledError:
        note("cancelled")
        raise
    note("finished")
    return f"{steps}まで数えました"


@server.tool()
async def get_current_time(city: str) -> str:
    """A name that clashes with mcp-server-time's tool: both must be offered, prefixed."""
    return f"{city}: 12:00"


@server.tool()
async def server_pid() -> int:
    """The server process's id (a test stops the process to see it restarted)."""
    return os.getpid()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
