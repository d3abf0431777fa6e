"""Shared fixtures: the local Realtime server (the offline engine's server with a scripted assistant)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the app under test never downloads a model (tests ship their own)
os.environ.setdefault("SEARCH_LATENCY_SECONDS", "0")
# Each test run builds its own knowledge-base file instead of sharing the user's default one.
os.environ.setdefault("SEARCH_DB_PATH", os.path.join(tempfile.mkdtemp(prefix="kb-test-"), "knowledge.sqlite3"))

from support.service import InstrumentedServer

from audio import SAMPLE_RATE
from offline.engine import Call, ResponseContext, Say
from offline.server import RealtimeServer
from offline.speech import EnergySpeechDetector
from settings import RealtimeSettings

API_KEY = "test-key-not-a-secret"


class ToneVoice:
    """Speaks any text as a 440 Hz tone, 60 ms per character: deterministic, non-silent audio."""

    def synthesize(self, text: str) -> Iterator[tuple[str, np.ndarray]]:
        yield text, self.tone(text)

    @staticmethod
    def tone(text: str) -> np.ndarray:
        samples = SAMPLE_RATE * min(10_000, max(200, 60 * len(text))) // 1000
        t = np.arange(samples) / SAMPLE_RATE
        return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)


class ScriptedAssistant:
    """Answers by rules the test sets: `rules` maps a regex on a user message to outputs.

    A function-call output is answered with "result:<output>", so tests see what the model got.
    """

    def __init__(self, rules: dict[str, Callable[[re.Match], list[Say | Call]]] | None = None) -> None:
        self.rules = rules or {}
        self.contexts: list[ResponseContext] = []
        self.answered: set[str] = set()
        self.result_phase: str | None = None  # the `phase` of what it says after a tool's output

    async def respond(self, context: ResponseContext) -> list[Say | Call]:
        """Like a model, answer everything new since the last response (messages and tool outputs)."""
        self.contexts.append(context)
        outputs: list[Say | Call] = []
        for item in context.items:
            if item["id"] in self.answered:
                continue
            self.answered.add(item["id"])
            if item["type"] == "function_call_output":
                outputs.append(Say(f"result:{item['output']}", phase=self.result_phase))
            elif item["type"] == "message" and item.get("role") == "user":
                text = "".join(p.get("text") or p.get("transcript") or "" for p in item.get("content", []))
                outputs += self._answer(text)
        return outputs or [Say("echo:")]

    def _answer(self, text: str) -> list[Say | Call]:
        for pattern, make in self.rules.items():
            if match := re.search(pattern, text):
                return make(match)
        return [Say(f"echo:{text}")]


def call(name: str, **arguments: object) -> Call:
    return Call(name, json.dumps(arguments, ensure_ascii=False))


@pytest.fixture
def assistant() -> ScriptedAssistant:
    return ScriptedAssistant()


@pytest.fixture
async def server(assistant: ScriptedAssistant):
    async def transcribe(pcm: np.ndarray) -> str | None:
        return srv.next_transcript  # type: ignore[attr-defined]

    srv = InstrumentedServer(lambda: assistant, ToneVoice, lambda: EnergySpeechDetector(threshold=500.0),
                             transcriber=transcribe, api_key=API_KEY, speed=8.0)
    srv.next_transcript = "こんにちは"  # type: ignore[attr-defined]
    await srv.start()
    yield srv
    await srv.stop()


def settings_for(server: RealtimeServer, flavour: str) -> RealtimeSettings:
    """Settings that reach `server` through the production SDK path (only the base URL differs)."""
    if flavour == "openai":
        return RealtimeSettings(provider="openai", model="gpt-realtime", api_key=API_KEY,
                                base_url=f"{server.url}/v1")
    version = "v1" if flavour == "azure-ga" else "2025-04-01-preview"
    return RealtimeSettings(provider="azure", dialect="ga" if version == "v1" else "preview", model="my-realtime",
                            endpoint=server.url + "/", api_version=version, api_key=API_KEY)


async def eventually(predicate: Callable[[], object], timeout: float = 5.0) -> object:
    """Wait for a condition driven by real I/O; fails the test on timeout."""
    async with asyncio.timeout(timeout):
        while not (value := predicate()):
            await asyncio.sleep(0.01)
    return value
