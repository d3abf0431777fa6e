"""/chat reply time and output tokens: text-only responses (nobody listening) vs audio (a voice call attached).

Against the local Realtime server (the tests' stand-in: it streams audio 8× faster than real time, text at
once; the real service is slower at both), through the running app and `gradio_client`, as an API caller
uses it. Medians of 5 per case.

Run: python benchmarks/bench_text_only.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ScriptedAssistant  # noqa: E402
from gradio_client import Client  # noqa: E402
from support.apphost import running_app  # noqa: E402

from offline.engine import Say  # noqa: E402

ANSWER = "今日の東京は晴れで、最高気温は二十二度の予想です。傘は要らないでしょう。"


def measure(rounds: int) -> None:
    assistant = ScriptedAssistant({r"": lambda m: [Say(ANSWER)]})
    with running_app("azure-ga", assistant) as app:
        for label, listening in (("テキストのみ（聞く人なし）", False), ("音声（音声通話あり）", True)):
            client = Client(app.url, verbose=False)
            client.predict("準備", api_name="/chat")  # connect first: time only the replies
            app.registry.get(client.session_hash).voice_attached = listening
            times = []
            for n in range(rounds):
                started = time.perf_counter()
                reply = client.predict(f"天気は？{n}", api_name="/chat")
                times.append(time.perf_counter() - started)
                assert reply == ANSWER, reply
            usage = client.predict(api_name="/usage")["responses"][-1]
            print(f"{label}: /chat 中央値 {statistics.median(times) * 1000:.0f} ms "
                  f"（{min(times) * 1000:.0f}–{max(times) * 1000:.0f}）、最後の応答の出力 "
                  f"テキスト {usage['output_text_tokens']} / 音声 {usage['output_audio_tokens']} トークン")
            client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    measure(parser.parse_args().rounds)
