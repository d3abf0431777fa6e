"""Offline speech recognition: faster-whisper on what the VAD called speech.

`SpeechRecognition` loads the model on a background thread (so the app starts at once) and
transcribes each utterance on a worker thread, never on the event loop that carries audio.
A model is a size name (downloaded once from the Hugging Face hub into its cache, with progress
in the log) or a directory holding a converted model. When none can be had it says why, in
Japanese, and every transcription fails with that reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from audio import SAMPLE_RATE, resample
from offline.engine import TranscriptionFailed
from settings import OfflineSettings

log = logging.getLogger(__name__)

WHISPER_RATE = 16_000
# Faster than real time on 2 cores and right on clean questions (benchmarks/bench_asr.py).
DEFAULT_MODEL = OfflineSettings().asr_model
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")
# The files faster-whisper itself downloads for a size name.
HUB_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]
BEAM_SIZE = 5
LOAD_WAIT_SECONDS = 15.0  # a model on disk loads in about a second; a download takes minutes
# Whisper's own test for a segment that is really silence or noise.
NO_SPEECH_PROB, NO_SPEECH_LOGPROB = 0.6, -1.0


class _LogProgress(tqdm):
    """Download progress as log lines (every 10 % or so) instead of a terminal bar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(disable=False, mininterval=1.0)
        kwargs.pop("name", None)
        self._logged = -10.0
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self.unit == "B" and self.total:
            percent = 100 * self.n / self.total
            if percent >= self._logged + 10 or self.n >= self.total:
                self._logged = percent
                log.info("音声認識モデルをダウンロード中: %.0f%%（%.0f / %.0f MB）", percent, self.n / 1e6,
                         self.total / 1e6)
        return True


def _hub_repo(size: str) -> str:
    from faster_whisper.utils import _MODELS  # size name → hub repository, as faster-whisper maps them

    if "/" in size:
        return size
    if size not in _MODELS:
        names = "、".join(sorted(_MODELS))
        raise TranscriptionFailed(f"音声認識モデル「{size}」は知らない名前です（使える名前: {names}、"
                                  "またはモデルのフォルダ）。")
    return _MODELS[size]


def _is_hub_name(name: str) -> bool:
    """A size name (`base`, `small.en`, `distil-large-v3.5`) or a hub id (`owner/repo`), not a folder."""
    from faster_whisper.utils import _MODELS

    return name in _MODELS or (name.count("/") == 1 and not name.startswith(("/", ".", "~")))


def locate_model(name: str, download_root: str | None = None, endpoint: str | None = None) -> str:
    """The directory of model `name` (a directory, or a size/hub id fetched once); TranscriptionFailed says why not."""
    path = Path(name).expanduser()
    if path.is_dir():
        missing = [f for f in MODEL_FILES if not (path / f).is_file()]
        if missing:
            raise TranscriptionFailed(f"音声認識モデルのフォルダ {path} に {', '.join(missing)} がありません。")
        return str(path)
    if not _is_hub_name(name) and (os.sep in name or name.startswith((".", "~")) or path.suffix):
        raise TranscriptionFailed(f"音声認識モデルのフォルダ {path} が見つかりません"
                                  "（OFFLINE_ASR_MODEL を確認してください）。")
    import huggingface_hub

    repo = _hub_repo(name)
    options: dict[str, Any] = {"allow_patterns": HUB_FILES, "cache_dir": download_root, "endpoint": endpoint}
    try:  # already in the cache: no network at all
        return huggingface_hub.snapshot_download(repo, local_files_only=True, **options)
    except Exception:  # any miss means "not cached yet"
        pass
    log.info("音声認識モデル %s を Hugging Face Hub からダウンロードします（初回のみ）", repo)
    try:
        return huggingface_hub.snapshot_download(repo, tqdm_class=_LogProgress, **options)
    except Exception as exc:  # offline, DNS, HTTP errors: all mean "cannot have it now"
        log.warning("音声認識モデルをダウンロードできませんでした: %s", exc)
        from huggingface_hub import constants

        offline = constants.HF_HUB_OFFLINE
        why = "HF_HUB_OFFLINE が設定されています" if offline else "ネットワークに接続できません"
        raise TranscriptionFailed(f"音声認識モデル「{name}」をダウンロードできませんでした（{why}）。") from None


class SpeechRecognition:
    """One Whisper model shared by all connections; transcriptions run one at a time on a worker thread."""

    def __init__(self, model: str = DEFAULT_MODEL, language: str = "ja", download_root: str | None = None,
                 endpoint: str | None = None, threads: int = 0) -> None:
        self.model_name, self.language = model, language
        self._download_root, self._endpoint = download_root, endpoint
        self._threads = threads or min(4, os.cpu_count() or 1)  # more threads than cores only slows it down
        self._model: Any = None
        self._ready = threading.Event()
        self.unavailable = ""  # why recognition cannot be used (one Japanese sentence), once known
        # One worker: utterances are recognised in order and never compete for the two cores.
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asr")
        self._loading = self._worker.submit(self._load)

    @property
    def ready(self) -> bool:
        return self._model is not None

    def problem(self) -> str:
        """Why speech cannot be transcribed right now (empty when it can)."""
        if self.unavailable:
            return self.unavailable
        return "" if self.ready else "音声認識モデルをまだ準備しています。"

    def wait_loaded(self, timeout: float | None = None) -> bool:
        self._ready.wait(timeout)
        return self.ready

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            from faster_whisper import WhisperModel

            directory = locate_model(self.model_name, self._download_root, self._endpoint)
            self._model = WhisperModel(directory, device="cpu", compute_type="int8", cpu_threads=self._threads)
            log.info("音声認識モデル %s を読み込みました（%.1f 秒）", self.model_name, time.perf_counter() - started)
        except TranscriptionFailed as exc:
            self.unavailable = str(exc)
        except Exception as exc:  # a corrupt or incompatible model must not stop the app
            log.warning("音声認識モデル %s を読み込めませんでした: %s", self.model_name, exc)
            self.unavailable = f"音声認識モデル「{self.model_name}」を読み込めませんでした。"
        finally:
            self._ready.set()
        if self.unavailable:
            log.warning("音声認識は使えません（テキスト入力は使えます）: %s", self.unavailable)

    def transcribe_blocking(self, pcm: np.ndarray, rate: int = SAMPLE_RATE) -> str:
        """Text of one utterance (mono int16); blocking and CPU-bound."""
        if self._model is None:
            raise TranscriptionFailed(self.problem())
        audio = resample(pcm.astype(np.float32) / 32768.0, rate, WHISPER_RATE)
        # Beam 5: the encoder dominates the cost of a short question, so the wider search costs ~5 % more time
        # and cuts the character error rate by a quarter (benchmarks/bench_asr.py).
        segments, _info = self._model.transcribe(audio, language=self.language, beam_size=BEAM_SIZE,
                                                 vad_filter=False, condition_on_previous_text=False,
                                                 without_timestamps=True)
        # The generator does the work while it is read; drop segments Whisper itself thinks are not speech.
        kept = [s.text for s in segments if not (s.no_speech_prob > NO_SPEECH_PROB
                                                 and s.avg_logprob < NO_SPEECH_LOGPROB)]
        return "".join(kept).strip()

    async def transcribe(self, pcm: np.ndarray) -> str:
        """The engine's Transcriber: waits briefly for a model still loading, then recognises off the loop."""
        if not self._ready.is_set():
            await asyncio.to_thread(self._ready.wait, LOAD_WAIT_SECONDS)
        if self._model is None:
            raise TranscriptionFailed(self.problem())
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._worker, self.transcribe_blocking, pcm)
        except TranscriptionFailed:
            raise
        except Exception as exc:  # one bad utterance must not end the connection
            log.warning("音声認識に失敗しました: %s", exc)
            raise TranscriptionFailed("この発話の音声認識に失敗しました。") from None

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
