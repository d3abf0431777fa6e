"""Offline mode: end of speech → first answer audio (speech recognition included), typed message →
first audio, and CPU per second of synthesized speech.

The spoken questions go to the engine in real time, 20 ms at a time, as the app's microphone path
sends them; the clock starts when the last frame of speech is sent and stops when the first frame of
the answer is ready to play. The model is OFFLINE_ASR_MODEL when set, else Whisper base from the test
packages (what the default "base" downloads). Run: python benchmarks/bench_offline.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402
from bench_asr import model_name  # noqa: E402
from support.openmeteo_server import serve_open_meteo  # noqa: E402

from audio import FRAME_SAMPLES, SAMPLE_RATE  # noqa: E402
from conversation.conversation import Conversation  # noqa: E402
from offline.asr import SpeechRecognition  # noqa: E402
from offline.runtime import build_offline_server  # noqa: E402
from offline.speech import synthesize  # noqa: E402
from settings import RealtimeSettings, load_settings  # noqa: E402
from tools import Toolbox  # noqa: E402

PHRASES = ["こんにちは", "何ができますか", "ありがとう", "量子コンピュータについて話して", "おはようございます"]
SPOKEN = {"東京の天気は？": "weather (a tool call, then the answer)", "こんにちは": "greeting (answered at once)"}
ROUNDS = 5
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE


async def first_audio(conversation: Conversation) -> None:
    while not conversation.playback.busy:
        await asyncio.sleep(0.005)


async def speak(conversation: Conversation, pcm: np.ndarray) -> float:
    """Send `pcm` then silence in real time until the answer's first audio; seconds from the end of speech."""
    clock = time.perf_counter()
    frames = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.int16), pcm])
    assert not conversation.playback.busy, "the previous answer is still playing"
    answered = asyncio.ensure_future(first_audio(conversation))
    sent, ended = 0, 0.0
    while not answered.done():
        frame = frames[sent : sent + FRAME_SAMPLES] if sent < frames.size else np.zeros(FRAME_SAMPLES, np.int16)
        await conversation.append_audio(frame)
        sent += FRAME_SAMPLES
        if sent >= frames.size and not ended:
            ended = time.perf_counter()
        clock += FRAME_SECONDS
        await asyncio.sleep(max(0.0, clock - time.perf_counter()))
    if not ended:
        raise RuntimeError("the answer began before the question ended")
    return time.perf_counter() - ended


async def quiet(conversation: Conversation) -> None:
    """Let the answer play out and nothing more arrive, as between two questions of a real talk."""
    idle = 0.0
    while idle < 1.0:
        await asyncio.sleep(0.1)
        idle = 0.0 if conversation.playback.busy else idle + 0.1
        conversation.playback.interrupt()  # nobody listens here: drop what was released


async def end_of_speech_to_first_audio() -> dict[str, list[float]]:
    recognition = SpeechRecognition(model_name())
    recognition.wait_loaded(600)
    server = build_offline_server(recognition=recognition)
    await server.start()
    results: dict[str, list[float]] = {label: [] for label in SPOKEN.values()}
    with serve_open_meteo() as weather:
        settings = load_settings({"OPEN_METEO_FORECAST_URL": weather.forecast_url,
                                  "OPEN_METEO_GEOCODING_URL": weather.geocoding_url})
        conversation = Conversation(RealtimeSettings(provider="offline", api_key="offline", model="offline-assistant",
                                                base_url=f"{server.url}/v1"), Toolbox.from_settings(settings))
        conversation.voice_attached = True
        conversation.start()
        await conversation.wait_connected(10)
        speech = {text: synthesize(text) for text in SPOKEN}
        for _ in range(ROUNDS):
            for text, label in SPOKEN.items():
                results[label].append(await speak(conversation, speech[text]))
                await quiet(conversation)
        await conversation.close()
    await server.stop()
    recognition.close()
    return results


async def time_to_first_audio(rounds: int = 3) -> list[float]:
    server = build_offline_server()
    await server.start()
    settings = RealtimeSettings(provider="offline", api_key="offline", model="offline-assistant",
                                base_url=f"{server.url}/v1")
    conversation = Conversation(settings)
    conversation.voice_attached = True
    conversation.start()
    await conversation.wait_connected(10)
    synthesize("ウォームアップ")  # the first call loads the dictionary (reported separately)
    results = []
    for _ in range(rounds):
        for phrase in PHRASES:
            conversation.playback.interrupt()
            start = time.perf_counter()
            turn = await conversation.send_text(phrase)
            await first_audio(conversation)
            results.append((time.perf_counter() - start) * 1000)
            await turn.done.wait()
    await conversation.close()
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
    spoken = asyncio.run(end_of_speech_to_first_audio())
    for label, seconds in spoken.items():
        print(f"end of speech → first audio, {label}: median {statistics.median(seconds):.2f} s "
              f"(min {min(seconds):.2f}, max {max(seconds):.2f}, n={len(seconds)})")
    ttfa = asyncio.run(time_to_first_audio())
    print(f"typed message → first audio (offline)    median {statistics.median(ttfa):.0f} ms "
          f"(min {min(ttfa):.0f}, max {max(ttfa):.0f}, n={len(ttfa)})")
    ratios = cpu_per_speech_second()
    print(f"CPU per second of synthesized speech     median {statistics.median(ratios):.3f} s (n={len(ratios)})")


if __name__ == "__main__":
    main()
