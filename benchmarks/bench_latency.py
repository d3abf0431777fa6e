"""The app's own latencies, measured in process against the local Realtime server.

1. audio delta received → first frame emitted by the FastRTC handler (time to sound);
2. tool finished → `response.create` received by the service (fast and long-running tools).

Run: python benchmarks/bench_latency.py   (prints medians; the machine is noisy, so compare runs)
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ScriptedAssistant, ToneVoice, call, settings_for  # noqa: E402
from support.service import InstrumentedServer  # noqa: E402

from conversation.conversation import Conversation  # noqa: E402
from offline.speech import EnergySpeechDetector  # noqa: E402
from realtime.events import parse  # noqa: E402
from settings import RealtimeSettings  # noqa: E402
from tools import Toolbox, ToolRegistry, default_toolbox  # noqa: E402
from web.browsers import BrowserSessions  # noqa: E402
from web.voice import VoiceHandler  # noqa: E402


async def delta_to_frame(trials: int = 60) -> list[float]:
    settings = RealtimeSettings(provider="offline", api_key="x", base_url="ws://127.0.0.1:9/v1")
    conversation = Conversation(settings)
    conversation.voice_attached = True  # as the registry marks a conversation a voice call is placed in
    handler = VoiceHandler(BrowserSessions(lambda: settings))
    handler.follow(conversation)
    delta = base64.b64encode(np.full(2400, 1000, np.int16).tobytes()).decode()  # 100 ms, as the service sends
    results = []
    for trial in range(trials):
        got = asyncio.get_running_loop().create_future()

        async def speaker(got: asyncio.Future) -> None:
            while True:  # None while idle, silence after a barge-in, then the delta's first frame
                out = await handler.emit()
                if isinstance(out, tuple) and out[1].any():
                    got.set_result(time.perf_counter())
                    return

        task = asyncio.create_task(speaker(got))
        await asyncio.sleep(0.2)  # the speaker is idle and waiting (any silence tail sent)
        start = time.perf_counter()
        await conversation.events.handle(parse({"type": "response.output_audio.delta", "item_id": f"item_{trial}",
                                      "delta": delta}))  # parsed and decoded at the edge, as received
        results.append((await got - start) * 1000)
        await task
        conversation.playback.interrupt()
    return results


async def tool_to_request(long_running: bool, trials: int = 15) -> list[float]:
    tools = ToolRegistry()

    @tools.tool(long_running=long_running)
    async def quick() -> dict:
        """Returns at once."""
        return {"ok": True}

    assistant = ScriptedAssistant({r"": lambda m: [call("quick")]})
    server = InstrumentedServer(lambda: assistant, ToneVoice, lambda: EnergySpeechDetector(), speed=50.0)
    await server.start()
    conversation = Conversation(settings_for(server, "azure-ga"), tools=Toolbox(tools, default_toolbox().context))
    conversation.start()
    await conversation.wait_connected(5)
    results = []
    for _ in range(trials):
        turn = await conversation.send_text("go")
        await turn.done.wait()
    record = server.connections[0]
    creates = [t for e, t in zip(record.received, record.received_at, strict=True) if e["type"] == "response.create"]
    for tool_call in conversation.tools.calls.values():
        after = [t for t in creates if t >= tool_call.finished_at]
        results.append((after[0] - tool_call.finished_at) * 1000)
    await conversation.close()
    await server.stop()
    return results


def report(name: str, values: list[float]) -> None:
    q = statistics.quantiles(values, n=10)
    median = statistics.median(values)
    print(f"{name:<48} median {median:7.2f} ms   p10 {q[0]:6.2f}   p90 {q[-1]:6.2f}   n={len(values)}")


async def main() -> None:
    report("audio delta → frame emitted (handler)", await delta_to_frame())
    report("fast tool finished → response.create at service", await tool_to_request(False))
    report("long tool finished → response.create at service", await tool_to_request(True))


if __name__ == "__main__":
    asyncio.run(main())
