"""Offline mode: time to first audio of a spoken answer, and CPU per second of synthesized speech.

Run: python benchmarks/bench_offline.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audio import SAMPLE_RATE  # noqa: E402
from conversation.conversation import Conversation  # noqa: E402
from offline.runtime import build_offline_server  # noqa: E402
from offline.speech import synthesize  # noqa: E402
from settings import RealtimeSettings  # noqa: E402

PHRASES = ["こんにちは", "何ができますか", "ありがとう", "量子コンピュータについて話して", "おはようございます"]


async def time_to_first_audio(rounds: int = 3) -> list[float]:
    server = build_offline_server()
    await server.start()
    settings = RealtimeSettings(provider="offline", api_key="offline", model="offline-assistant",
                                base_url=f"{server.url}/v1")
    session = Conversation(settings)
    session.voice_attached = True
    session.start()
    await session.wait_connected(10)
    synthesize("ウォームアップ")  # the first call loads the dictionary (reported separately)
    results = []
    for _ in range(rounds):
        for phrase in PHRASES:
            session.playback.interrupt()
            start = time.perf_counter()
            turn = await session.send_text(phrase)
            while session.playback.next_frame() is None:
                await session.playback.wait_for_audio(0.5)
            results.append((time.perf_counter() - start) * 1000)
            await turn.done.wait()
    await session.close()
    await server.stop()
    return results


def cpu_per_speech_second() -> list[float]:
    sentences = ["東京の天気は晴れです。", "明日の大阪は曇り、最高気温は15度、降水確率は20パーセントです。",
                 "「AI」の検索結果は24件です。いちばん関連が高いのは「AI倫理の主要な論点」です。"]
    ratios = []
    for _ in range(5):
        for text in sentences:
            cpu = time.process_time()
            pcm = synthesize(text)
            ratios.append((time.process_time() - cpu) / (pcm.size / SAMPLE_RATE))
    return ratios


def main() -> None:
    load = time.perf_counter()
    synthesize("準備")
    print(f"first synthesis (loads the dictionary)   {time.perf_counter() - load:.2f} s")
    ttfa = asyncio.run(time_to_first_audio())
    print(f"typed message → first audio (offline)    median {statistics.median(ttfa):.0f} ms "
          f"(min {min(ttfa):.0f}, max {max(ttfa):.0f}, n={len(ttfa)})")
    ratios = cpu_per_speech_second()
    print(f"CPU per second of synthesized speech     median {statistics.median(ratios):.3f} s (n={len(ratios)})")


if __name__ == "__main__":
    main()
