"""Start the offline engine: the local Realtime server with speech recognition (faster-whisper), VAD,
TTS, and the rule-based assistant or a local language model (any Chat Completions server)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
from openai import AsyncOpenAI

from offline.asr import DEFAULT_MODEL, SpeechRecognition
from offline.assistant import OfflineAssistant
from offline.engine import Assistant, TranscriptionFailed
from offline.llm import LanguageModelAssistant
from offline.server import RealtimeServer
from offline.speech import TurnDetector, split_sentences, synthesize

log = logging.getLogger(__name__)

ASR_OFF = ("none", "off", "0")  # OFFLINE_ASR_MODEL values that turn recognition off
NO_RECOGNITION = "音声認識を使わない設定です（OFFLINE_ASR_MODEL）。"


async def _not_transcribed(_pcm: np.ndarray) -> str:
    raise TranscriptionFailed(NO_RECOGNITION)


FIRST_PIECE_CHARS = 24  # a longer first sentence is said clause by clause, so the answer starts sooner


class JapaneseVoice:
    """Offline speech from pyopenjtalk-plus, one sentence at a time (24 kHz PCM16)."""

    def synthesize(self, text: str) -> Iterator[tuple[str, np.ndarray]]:
        sentences = split_sentences(text)
        if sentences and len(sentences[0]) > FIRST_PIECE_CHARS and "、" in sentences[0][8:-8]:
            cut = sentences[0].index("、", 8) + 1  # 「今日の東京は晴れ、」 is heard while the rest is made
            sentences[:1] = [sentences[0][:cut], sentences[0][cut:]]
        for sentence in sentences:
            pcm = synthesize(sentence)
            if pcm.size:
                yield sentence, pcm


@dataclass(frozen=True)
class LanguageModelSettings:
    """A Chat Completions server: Ollama (http://localhost:11434/v1), llama.cpp's llama-server, LM Studio, vLLM."""

    base_url: str
    model: str
    api_key: str = "local"  # local servers ignore it; the SDK wants one

    def client(self) -> AsyncOpenAI:
        # No retries: a stopped local server should hand over to the rules at once. Local models can be slow
        # to start (loading weights), so reading waits long; connecting does not.
        return AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0,
                           timeout=httpx.Timeout(120.0, connect=5.0))


@dataclass(frozen=True)
class OfflineSettings:
    asr_model: str = DEFAULT_MODEL  # a size name (downloaded once) or a model directory; "none" turns it off
    asr_language: str = "ja"
    language_model: LanguageModelSettings | None = None


def offline_settings(environ: dict[str, str] | os._Environ[str] = os.environ) -> OfflineSettings:
    """The OFFLINE_* variables (read here only, when the engine starts)."""
    def text(name: str, default: str = "") -> str:
        return (environ.get(name) or "").strip() or default

    base_url, model = text("OFFLINE_LLM_BASE_URL"), text("OFFLINE_LLM_MODEL")
    if bool(base_url) != bool(model):
        log.warning("ローカル言語モデルを使うには OFFLINE_LLM_BASE_URL と OFFLINE_LLM_MODEL の両方が必要です。"
                    "ルールベースの応答で動きます。")
    llm = LanguageModelSettings(base_url, model, text("OFFLINE_LLM_API_KEY", "local")) if base_url and model else None
    return OfflineSettings(text("OFFLINE_ASR_MODEL", DEFAULT_MODEL), text("OFFLINE_ASR_LANGUAGE", "ja"), llm)


def build_offline_server(speed: float = 4.0, recognition: SpeechRecognition | None = None,
                         language_model: LanguageModelSettings | None = None) -> RealtimeServer:
    """The engine's server; without `recognition` voice turns are detected but honestly not transcribed."""
    problem = recognition.problem if recognition is not None else None
    assistant: Assistant = OfflineAssistant(problem)
    if language_model is not None:
        assistant = LanguageModelAssistant(language_model.client(), language_model.model, assistant, problem)
    transcriber = recognition.transcribe if recognition is not None else _not_transcribed
    # One assistant for all connections: it keeps no per-conversation state (and one view of the model's health).
    return RealtimeServer(lambda: assistant, JapaneseVoice, TurnDetector, transcriber=transcriber, speed=speed)


def serve_in_thread(server: RealtimeServer, port: int = 0) -> str:
    """Run `server` on its own thread and loop (TTS and VAD stay off the UI's loop); return its URL."""
    started = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        loop.run_until_complete(server.start(port))
        started.set()
        loop.run_forever()

    threading.Thread(target=run, name="realtime-engine", daemon=True).start()
    if not started.wait(30):
        raise RuntimeError("offline engine did not start")
    return server.url


def start_offline_engine(port: int = 0) -> str:
    """Start the offline engine as configured by OFFLINE_*; returns the base URL the `openai` SDK connects to."""
    settings = offline_settings()
    recognition = None
    if settings.asr_model.lower() not in ASR_OFF:
        recognition = SpeechRecognition(settings.asr_model, settings.asr_language)  # loads in the background
    if settings.language_model is not None:
        log.info("ローカル言語モデル: %s（%s）", settings.language_model.model, settings.language_model.base_url)
    server = build_offline_server(recognition=recognition, language_model=settings.language_model)
    return serve_in_thread(server, port) + "/v1"
