"""What a conversation costs as it grows, and what the meter itself costs.

1. A 20-turn typed conversation (answers spoken, as in a voice call) against the local Realtime server,
   which reports usage like the service: input tokens of responses 1, 10 and 20, the cached share,
   the estimated cost at the default prices of two models, and the typed-turn latency median.
2. The meter: `on_response_done`, and `summary()` without rows (the page line, on every update) and with every
   row (/usage, export) at 20 and 500 responses.

Run: python benchmarks/bench_usage.py   (prints medians; the machine is noisy, so compare runs)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ScriptedAssistant, ToneVoice, settings_for  # noqa: E402

from conversation.conversation import Conversation  # noqa: E402
from conversation.prices import load_prices  # noqa: E402
from conversation.usage import TokenUsage, UsageMeter  # noqa: E402
from offline.server import RealtimeServer  # noqa: E402
from offline.speech import EnergySpeechDetector  # noqa: E402

TURNS = 20
QUESTION = "明日の東京の天気と、週末に出かけるならどこがいいかを教えてください。"


async def conversation_cost() -> None:
    assistant = ScriptedAssistant()
    server = RealtimeServer(lambda: assistant, ToneVoice, lambda: EnergySpeechDetector(), speed=50.0)
    await server.start()
    conversation = Conversation(settings_for(server, "openai"))
    conversation.voice_attached = True  # answers come as audio, billed as audio output and then input
    conversation.start()
    await conversation.wait_connected(5)
    try:
        for turn_number in range(TURNS):
            turn = await conversation.send_text(f"{turn_number + 1}: {QUESTION}")
            await turn.done.wait()
            conversation.playback.interrupt()  # nobody listens in a benchmark: drop the queued audio
        summary = conversation.usage_summary()
    finally:
        await conversation.close()
        await server.stop()
    rows = summary["responses"]
    print(f"{TURNS} typed turns, answers spoken (local server, {len(rows)} responses)")
    for index in (0, 9, 19):
        row = rows[index]
        print(f"  response {index + 1:2d}: input {row['input_tokens']:5d} tokens "
              f"(cached {row['cached_tokens']:5d}, audio {row['input_audio_tokens']:4d}), "
              f"output {row['output_tokens']:3d}")
    totals = TokenUsage(**{k: v for k, v in summary["totals"].items() if k not in ("responses", "cost_usd")})
    prices = load_prices()
    for model in ("gpt-realtime", "gpt-realtime-mini"):
        print(f"  estimated cost at {model} prices ({prices.as_of}): ${totals.cost(prices.lookup(model)[1]):.4f}")
    print(f"  cached share of input: {totals.cached_tokens / max(1, totals.input_tokens):.0%}")
    latency = summary["latency"]
    print(f"  typed turn → first text, median: {latency['typed_median_seconds'] * 1000:.0f} ms "
          f"({latency['typed_turns']} turns)")


def meter_cost() -> None:
    usage = {"input_tokens": 5000, "output_tokens": 300, "total_tokens": 5300,
             "input_token_details": {"text_tokens": 3000, "audio_tokens": 2000, "cached_tokens": 4800},
             "output_token_details": {"text_tokens": 60, "audio_tokens": 240}}
    for responses in (20, 500):
        meter = UsageMeter("gpt-realtime", load_prices())
        record = []
        for n in range(responses):
            start = time.perf_counter()
            meter.on_response_done(f"resp_{n}", usage)
            record.append((time.perf_counter() - start) * 1e6)
        timings = {}
        for detail in (False, True):
            runs = []
            for _ in range(50):
                start = time.perf_counter()
                meter.summary(detail=detail)
                runs.append((time.perf_counter() - start) * 1e6)
            timings[detail] = statistics.median(runs)
        print(f"meter at {responses} responses: on_response_done {statistics.median(record):.1f} µs, "
              f"summary() for the page line {timings[False]:.0f} µs, with every row (/usage) {timings[True]:.0f} µs")


if __name__ == "__main__":
    asyncio.run(conversation_cost())
    meter_cost()
