"""Start the offline engine: the local Realtime server with speech recognition (faster-whisper), VAD,
TTS, and the rule-based assistant or a local language model (any Chat Completions server)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
from openai import AsyncOpenAI

from offline.asr import SpeechRecognition
from offline.assistant import OfflineAssistant
from offline.engine import Assistant, TranscriptionFailed
from offline.llm import LanguageModelAssistant
from offline.server import RealtimeServer
from offline.speech import SileroSpeechDetector, split_sentences, synthesize
from settings import OfflineSettings

log = logging.getLogger(__name__)

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


def language_model_client(settings: OfflineSettings) -> AsyncOpenAI:
    # No retries: a stopped local server should hand over to the rules at once. Local models can be slow
    # to start (loading weights), so reading waits long; connecting does not.
    return AsyncOpenAI(base_url=settings.llm_base_url, api_key=settings.llm_api_key, max_retries=0,
                       timeout=httpx.Timeout(120.0, connect=5.0))


@dataclass(frozen=True)
class OfflineEngine:
    """The running engine, as the page describes it."""

    url: str
    settings: OfflineSettings
    recognition: SpeechRecognition | None

    @property
    def assistant_label(self) -> str:
        if self.settings.language_model_on:
            return f"ローカル言語モデル {self.settings.llm_model}"
        return "内蔵のルールベース・アシスタント"

    def recognition_problem(self) -> str:
        """Why spoken questions cannot be understood (empty when they can, or while the model still loads)."""
        return NO_RECOGNITION if self.recognition is None else self.recognition.unavailable


def build_offline_server(speed: float = 4.0, recognition: SpeechRecognition | None = None,
                         language_model: OfflineSettings | None = None,
                         server_class: type[RealtimeServer] = RealtimeServer) -> RealtimeServer:
    """The engine's server; without `recognition` voice turns are detected but honestly not transcribed.

    `server_class`: tests pass a RealtimeServer subclass that records what the app sent (tests/support/service.py).
    """
    problem = recognition.problem if recognition is not None else None
    assistant: Assistant = OfflineAssistant(problem)
    if language_model is not None:
        assistant = LanguageModelAssistant(language_model_client(language_model), language_model.llm_model, assistant,
                                           problem)
    transcriber = recognition.transcribe if recognition is not None else _not_transcribed
    # One assistant for all connections: it keeps no per-conversation state (and one view of the model's health).
    return server_class(lambda: assistant, JapaneseVoice, SileroSpeechDetector, transcriber=transcriber, speed=speed)


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


def start_offline_engine(settings: OfflineSettings, port: int = 0) -> OfflineEngine:
    """Start the offline engine as configured (OFFLINE_*); its URL is the base the `openai` SDK connects to."""
    recognition = None
    if settings.recognition_on:
        recognition = SpeechRecognition(settings.asr_model, settings.asr_language)  # loads in the background
    language_model = settings if settings.language_model_on else None
    if language_model is not None:
        log.info("ローカル言語モデル: %s（%s）", settings.llm_model, settings.llm_base_url)
    server = build_offline_server(recognition=recognition, language_model=language_model)
    return OfflineEngine(serve_in_thread(server, port) + "/v1", settings, recognition)
