"""Start the offline engine: the local Realtime server with the rule-based assistant, VAD and TTS."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np

from offline.assistant import OfflineAssistant
from offline.server import RealtimeServer
from offline.speech import TurnDetector, split_sentences, synthesize


class JapaneseVoice:
    """Offline speech from pyopenjtalk-plus, one sentence at a time (24 kHz PCM16)."""

    def synthesize(self, text: str) -> Iterator[tuple[str, np.ndarray]]:
        for sentence in split_sentences(text):
            pcm = synthesize(sentence)
            if pcm.size:
                yield sentence, pcm


def build_offline_server(speed: float = 4.0) -> RealtimeServer:
    # No transcriber: offline mode has no speech recognition and never invents a transcript.
    return RealtimeServer(OfflineAssistant, JapaneseVoice, TurnDetector, transcriber=None, speed=speed)


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
    """Start the offline engine; returns the base URL the `openai` SDK connects to."""
    return serve_in_thread(build_offline_server(), port) + "/v1"
