"""Offline speech recognition: real-time factor and character error rate on 20 spoken questions.

The questions (weather and search, as people ask this app) are synthesised with pyopenjtalk and
recognised by faster-whisper as the offline engine does it (int8 on the CPU, beam 1, Japanese).
The model is OFFLINE_ASR_MODEL when set, else Whisper base from the test packages
(the same model the default "base" downloads).

Run: python benchmarks/bench_asr.py            (5 rounds; the figures are medians)
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from audio import SAMPLE_RATE  # noqa: E402
from offline.asr import SpeechRecognition  # noqa: E402
from offline.speech import synthesize  # noqa: E402

QUESTIONS = [
    "東京の天気は？", "明日の大阪の天気を教えて", "札幌は明後日雪が降りますか", "今日の福岡の気温は？",
    "名古屋の明日の降水確率を教えて", "京都の天気はどうですか", "横浜は今日晴れますか", "明日の仙台の最高気温は？",
    "那覇の天気を教えてください", "神戸の明後日の天気は？",
    "AIについて調べて", "機械学習について検索して", "音声認識の記事を探して", "深層学習とは何ですか",
    "データサイエンスについて教えて", "自然言語処理について調べてください", "強化学習の情報を教えて",
    "統計について検索して", "ニューラルネットワークについて知りたい", "大規模言語モデルについて調べて",
]
ROUNDS = 5
_NOT_SPOKEN = re.compile(r"[\s、。，．,.!?！？「」『』・…]")


def characters(text: str) -> str:
    return _NOT_SPOKEN.sub("", unicodedata.normalize("NFKC", text))


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def model_name() -> str:
    if os.environ.get("OFFLINE_ASR_MODEL"):
        return os.environ["OFFLINE_ASR_MODEL"]
    from support.whisper_model import whisper_base_dir

    return str(whisper_base_dir())


def main() -> None:
    name = model_name()
    started = time.perf_counter()
    recognition = SpeechRecognition(name)
    if not recognition.wait_loaded(600):
        sys.exit(f"no model: {recognition.problem()}")
    print(f"model {name} loaded in {time.perf_counter() - started:.1f} s ({recognition._threads} threads)")
    speech = [synthesize(q) for q in QUESTIONS]
    audio_seconds = sum(s.size for s in speech) / SAMPLE_RATE
    factors, cers, latencies = [], [], []
    for _ in range(ROUNDS):
        spent, errors, total = 0.0, 0, 0
        for question, pcm in zip(QUESTIONS, speech, strict=True):
            t = time.perf_counter()
            heard = recognition.transcribe_blocking(pcm)
            took = time.perf_counter() - t
            spent += took
            latencies.append(took)
            errors += edit_distance(characters(question), characters(heard))
            total += len(characters(question))
            if len(factors) == 0 and characters(question) != characters(heard):
                print(f"  {question} → {heard}")
        factors.append(spent / audio_seconds)
        cers.append(errors / total)
    recognition.close()
    print(f"{len(QUESTIONS)} questions, {audio_seconds:.1f} s of speech, {ROUNDS} rounds")
    print(f"real-time factor                        median {statistics.median(factors):.2f} "
          f"(min {min(factors):.2f}, max {max(factors):.2f})")
    print(f"time to transcribe one question          median {statistics.median(latencies):.2f} s")
    print(f"character error rate                     median {100 * statistics.median(cers):.1f} %")


if __name__ == "__main__":
    main()
