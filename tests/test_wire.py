"""The client against the wire as the API reference spells it, in both dialects.

The local server writes its event names literally (offline/wire.py), so these tests fail when the
client expects or sends a name the service does not use. The client is driven through its public
API (`Conversation`) over a real socket; what crossed the wire is read from the server's recording.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import API_KEY, ScriptedAssistant, ToneVoice, eventually, settings_for
from support.service import InstrumentedServer

from audio import SAMPLE_RATE
from conversation.conversation import Conversation
from offline.engine import Say
from offline.speech import EnergySpeechDetector
from web.chat import chatbot_messages

FLAVOURS = ["azure-ga", "azure-preview", "openai"]
TWO_SENTENCES = "最初の文です。次の文です。"

# The same server events as each dialect names them (Realtime API reference).
SERVER_NAMES = {
    "preview": {"audio": "response.audio.delta", "transcript": "response.audio_transcript.delta",
                "item": "conversation.item.created"},
    "ga": {"audio": "response.output_audio.delta", "transcript": "response.output_audio_transcript.delta",
           "item": "conversation.item.added"},
}


def dialect_of(flavour: str) -> str:
    return "preview" if flavour == "azure-preview" else "ga"


class PausingVoice:
    """Speaks each sentence as one second of tone and waits for `proceed` before the second sentence,
    so a test can look at the app in the middle of a response."""

    def __init__(self) -> None:
        self.proceed = threading.Event()

    def synthesize(self, text: str) -> Iterator[tuple[str, np.ndarray]]:
        sentences = [s + "。" for s in text.split("。") if s]
        for index, sentence in enumerate(sentences):
            if index:
                self.proceed.wait(10)
            yield sentence, ToneVoice.tone("x" * 17)  # 1.02 s


@pytest.fixture
def voice() -> Iterator[PausingVoice]:
    voice = PausingVoice()
    yield voice
    voice.proceed.set()  # never leave a synthesis thread waiting


@pytest.fixture
async def wire_server(voice: PausingVoice):
    assistant = ScriptedAssistant({"二文": lambda m: [Say(TWO_SENTENCES)]})

    async def transcribe(pcm: np.ndarray) -> str:
        return "こんにちは"

    server = InstrumentedServer(lambda: assistant, lambda: voice, lambda: EnergySpeechDetector(threshold=500.0),
                                transcriber=transcribe, api_key=API_KEY, speed=8.0)
    await server.start()
    yield server
    await server.stop()


async def open_conversation(server: InstrumentedServer, flavour: str, listening: bool) -> Conversation:
    conversation = Conversation(settings_for(server, flavour))
    conversation.voice_attached = listening  # a voice call is attached: answers come as audio
    conversation.start()
    assert await conversation.wait_connected(5), conversation.snapshot().notice
    return conversation


def assistant_texts(conversation: Conversation) -> list[str]:
    return [m["content"] for m in chatbot_messages(conversation.snapshot().messages) if m["role"] == "assistant"]


def user_texts(conversation: Conversation) -> list[str]:
    return [m["content"] for m in chatbot_messages(conversation.snapshot().messages) if m["role"] == "user"]


async def speaker(conversation: Conversation, heard: list[np.ndarray]) -> None:
    """Plays the assistant's audio at real time, as the voice handler does."""
    while True:
        frame = conversation.playback.next_frame()
        if frame is None:
            await asyncio.sleep(max(0.005, conversation.playback.wait_time()))
        else:
            heard.append(frame)


# ---- what the client sends -----------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_session_update_has_the_dialects_shape(wire_server, flavour):
    conversation = await open_conversation(wire_server, flavour, listening=False)
    try:
        record = wire_server.connections[0]
        await eventually(lambda: record.of_type("session.update"))
        session = record.of_type("session.update")[0]["session"]
        if dialect_of(flavour) == "preview":
            assert not {"type", "audio", "output_modalities"} & session.keys()
            assert "audio" in session["modalities"]
            assert session["input_audio_format"] == "pcm16" and session["output_audio_format"] == "pcm16"
            assert session["turn_detection"]["type"] == "server_vad"
            assert session["input_audio_transcription"]["language"] == "ja"
            assert isinstance(session["voice"], str)
        else:
            assert session["type"] == "realtime"
            legacy = {"modalities", "voice", "input_audio_format", "output_audio_format", "turn_detection",
                      "input_audio_transcription"}
            assert not legacy & session.keys()
            assert session["output_modalities"] in (["audio"], ["text"])
            assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
            assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
            assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
            assert session["audio"]["input"]["transcription"]["language"] == "ja"
            assert isinstance(session["audio"]["output"]["voice"], str)
        for tool in session["tools"]:  # Realtime tools are flat, not Chat Completions' {"function": {...}}
            assert tool["type"] == "function" and {"name", "description", "parameters"} <= tool.keys()
        assert record.sent_of_type("session.updated") and not record.sent_of_type("error")
    finally:
        await conversation.close()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_typed_message_is_an_item_then_a_response_create(wire_server, flavour):
    conversation = await open_conversation(wire_server, flavour, listening=False)
    try:
        turn = await conversation.send_text("こんにちは")
        await eventually(turn.done.is_set)
        record = wire_server.connections[0]
        kinds = [e["type"] for e in record.received if e["type"] in ("conversation.item.create", "response.create")]
        assert kinds[:2] == ["conversation.item.create", "response.create"]
        item = record.of_type("conversation.item.create")[0]["item"]
        assert (item["type"], item["role"]) == ("message", "user")
        assert item["content"] == [{"type": "input_text", "text": "こんにちは"}]
        response = record.of_type("response.create")[0]["response"]
        foreign = "modalities" if dialect_of(flavour) == "ga" else "output_modalities"
        assert foreign not in response  # the service rejects the other dialect's field
        assert record.sent_of_type("error") == []
        assert assistant_texts(conversation) == ["echo:こんにちは"]
    finally:
        await conversation.close()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_barge_in_sends_a_truncate_the_service_accepts(wire_server, voice, flavour):
    conversation = await open_conversation(wire_server, flavour, listening=True)
    heard: list[np.ndarray] = []
    playing = asyncio.create_task(speaker(conversation, heard))
    try:
        await conversation.send_text("二文で答えて")
        await eventually(lambda: len(heard) >= 15, 5)  # 300 ms of the first sentence heard
        tone = ToneVoice.tone("x" * 6)
        for chunk in np.array_split(tone, 4):  # the user starts speaking over the answer
            await conversation.append_audio(chunk)
        record = wire_server.connections[0]
        truncate = (await eventually(lambda: record.of_type("conversation.item.truncate"), 5))[0]
        assert set(truncate) >= {"type", "item_id", "content_index", "audio_end_ms"}
        assert truncate["content_index"] == 0 and isinstance(truncate["audio_end_ms"], int)
        assert 0 < truncate["audio_end_ms"] <= 1020  # what was heard, never past the audio that exists
        truncated = await eventually(lambda: record.sent_of_type("conversation.item.truncated"), 5)
        assert truncated[0]["item_id"] == truncate["item_id"]
        assert not [e for e in record.sent_of_type("error") if "truncat" in str(e)]
    finally:
        voice.proceed.set()
        playing.cancel()
        await conversation.close()


# ---- what the client accepts ---------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_streamed_answer_is_shown_and_heard_while_it_arrives(wire_server, voice, flavour):
    names = SERVER_NAMES[dialect_of(flavour)]
    other = SERVER_NAMES["ga" if dialect_of(flavour) == "preview" else "preview"]
    conversation = await open_conversation(wire_server, flavour, listening=True)
    heard: list[np.ndarray] = []
    playing = asyncio.create_task(speaker(conversation, heard))
    try:
        turn = await conversation.send_text("二文で答えて")
        # The server is paused after the first sentence: only its deltas can have shown this text.
        await eventually(lambda: assistant_texts(conversation) == ["最初の文です。"], 5)
        await eventually(lambda: len(heard) >= 10, 5)
        assert np.abs(np.concatenate(heard)).max() > 7000  # the tone itself, not silence
        record = wire_server.connections[0]
        sent = {e["type"] for e in record.sent}
        assert {names["audio"], names["transcript"], names["item"]} <= sent
        assert not {other["audio"], other["transcript"]} & sent
        voice.proceed.set()
        await eventually(turn.done.is_set, 5)
        assert assistant_texts(conversation) == [TWO_SENTENCES]
    finally:
        voice.proceed.set()
        playing.cancel()
        await conversation.close()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_spoken_turn_appears_with_its_transcript(wire_server, flavour):
    conversation = await open_conversation(wire_server, flavour, listening=True)
    try:
        speech = ToneVoice.tone("あいうえおかきくけこ")
        for chunk in np.array_split(np.concatenate([speech, np.zeros(SAMPLE_RATE, np.int16)]), 20):
            await conversation.append_audio(chunk)
        # The user's item is known only from the item event the server names per dialect.
        await eventually(lambda: user_texts(conversation) == ["こんにちは"], 5)
        await eventually(lambda: assistant_texts(conversation) == ["echo:こんにちは"], 5)
        record = wire_server.connections[0]
        assert record.sent_of_type(SERVER_NAMES[dialect_of(flavour)]["item"])
    finally:
        await conversation.close()
