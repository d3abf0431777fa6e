"""Memory of the offline engine over a long voice call: RSS growth in silence and with a turn every 15 s.

The real offline server (Silero VAD, Japanese TTS, rule-based assistant) on its own thread, as the
app runs it, and a client that speaks the wire protocol and streams 20 ms microphone frames in
real time, like an open voice call. RSS is sampled every 30 s; growth is measured from the end of
a warm-up (model and dictionary loads are not leaks).

Run: python benchmarks/bench_memory.py [--minutes 10] [--call silent|turns|both] [--asr]
(--asr: with speech recognition as the app runs it, the test Whisper base model or OFFLINE_ASR_MODEL)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the test Whisper model, for --asr

from audio import SAMPLE_RATE, encode_pcm16  # noqa: E402
from offline.asr import SpeechRecognition  # noqa: E402
from offline.runtime import build_offline_server, serve_in_thread  # noqa: E402
from offline.speech import synthesize  # noqa: E402

FRAME = SAMPLE_RATE // 50  # 20 ms
TURN_EVERY_S = 15.0
WARM_UP_S = 30.0
SAMPLE_EVERY_S = 30.0
SESSION = {"type": "realtime", "output_modalities": ["audio"], "instructions": "",
           "audio": {"input": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                               "transcription": {"model": "whisper-1", "language": "ja"},
                               "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                                  "silence_duration_ms": 700, "create_response": True,
                                                  "interrupt_response": True}},
                     "output": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "voice": "marin"}},
           "tools": [], "tool_choice": "auto"}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def call(url: str, minutes: float, with_turns: bool) -> list[tuple[float, float]]:
    """Stream a call for `minutes`; returns (seconds since warm-up, RSS MB) samples and counts responses."""
    speech = synthesize("東京の天気を教えてください")
    silence = np.zeros(FRAME, np.int16)
    responses = 0
    async with connect(url.replace("http://", "ws://") + "/v1/realtime?model=offline-assistant",
                       additional_headers={"Authorization": "Bearer offline"}, max_size=None) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": SESSION}))

        async def drain() -> None:  # the client plays nothing back: the server's memory is measured
            nonlocal responses
            async for message in ws:
                responses += json.loads(message).get("type") == "response.done"

        reader = asyncio.create_task(drain())
        start = time.monotonic()
        end = start + WARM_UP_S + minutes * 60
        samples: list[tuple[float, float]] = []
        next_sample, next_turn, sent = start + WARM_UP_S, start + 5.0, 0
        pending = np.zeros(0, np.int16)
        while (now := time.monotonic()) < end:
            if with_turns and now >= next_turn:
                pending, next_turn = speech, next_turn + TURN_EVERY_S
            frame, pending = (pending[:FRAME], pending[FRAME:]) if pending.size else (silence, pending)
            frame = np.pad(frame, (0, FRAME - frame.size))
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": encode_pcm16(frame)}))
            sent += 1
            if now >= next_sample:
                samples.append((now - start - WARM_UP_S, rss_mb()))
                print(f"  {samples[-1][0] / 60:5.1f} min  RSS {samples[-1][1]:7.1f} MB  responses {responses}",
                      flush=True)
                next_sample += SAMPLE_EVERY_S
            await asyncio.sleep(max(0.0, start + sent * 0.02 - time.monotonic()))  # real time, no drift
        reader.cancel()
        samples.append((time.monotonic() - start - WARM_UP_S, rss_mb()))
        print(f"  {samples[-1][0] / 60:5.1f} min  RSS {samples[-1][1]:7.1f} MB  responses {responses}", flush=True)
    return samples


def report(name: str, samples: list[tuple[float, float]]) -> None:
    growth = samples[-1][1] - samples[0][1]
    slope = statistics.linear_regression([t for t, _ in samples], [m for _, m in samples]).slope * 60
    print(f"{name}: RSS {samples[0][1]:.1f} → {samples[-1][1]:.1f} MB over {samples[-1][0] / 60:.1f} min: "
          f"growth {growth:+.1f} MB (trend {slope:+.2f} MB/min)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--call", choices=["silent", "turns", "both"], default="both")
    parser.add_argument("--asr", action="store_true", help="transcribe each turn as the app does")
    args = parser.parse_args()
    recognition = None
    if args.asr:
        from support.whisper_model import whisper_base_dir

        recognition = SpeechRecognition(os.environ.get("OFFLINE_ASR_MODEL") or str(whisper_base_dir()))
        if not recognition.wait_loaded(600):
            sys.exit(f"no speech recognition model: {recognition.problem()}")
    url = serve_in_thread(build_offline_server(recognition=recognition))
    for name, with_turns in (("silent call", False), (f"call with a turn every {TURN_EVERY_S:g} s", True)):
        if args.call in ("both", "turns" if with_turns else "silent"):
            print(f"{name}, {args.minutes:g} min after {WARM_UP_S:g} s warm-up:", flush=True)
            report(name, asyncio.run(call(url, args.minutes, with_turns)))


if __name__ == "__main__":
    main()
