"""The local server's stand-in behaviours of the service, each opt-in, spoken to with literal events
through the openai SDK's own connections (no client code of ours in between)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from conftest import API_KEY, ScriptedAssistant, ToneVoice
from openai import AsyncAzureOpenAI, AsyncOpenAI
from support.service import InstrumentedServer
from websockets.exceptions import ConnectionClosed

from audio import SAMPLE_RATE, encode_pcm16
from offline.server import cap_reason
from offline.speech import EnergySpeechDetector

DIALECTS = ["ga", "preview"]
TEXT_EVENTS = {"ga": ("response.output_text.delta", "response.output_text.done", "output_text"),
               "preview": ("response.text.delta", "response.text.done", "text")}
AUDIO_DELTA = {"ga": "response.output_audio.delta", "preview": "response.audio.delta"}
MODALITIES = {"ga": "output_modalities", "preview": "modalities"}


class CountingTranscriber:
    """Hears 「こんにちは」 in every utterance and keeps how many samples each one had."""

    def __init__(self) -> None:
        self.samples: list[int] = []

    async def __call__(self, pcm: np.ndarray) -> str:
        self.samples.append(pcm.size)
        return "こんにちは"


@asynccontextmanager
async def stand_in(**options: Any) -> AsyncIterator[InstrumentedServer]:
    server = InstrumentedServer(ScriptedAssistant, ToneVoice, lambda: EnergySpeechDetector(threshold=500.0),
                                transcriber=CountingTranscriber(), api_key=API_KEY, speed=20.0, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def sdk_connection(server: InstrumentedServer, dialect: str) -> Any:
    """The SDK's own connection manager for a dialect (preview: Azure's deployment URL)."""
    if dialect == "preview":
        client = AsyncAzureOpenAI(azure_endpoint=server.url, api_key=API_KEY, api_version="2025-04-01-preview",
                                  azure_deployment="dep", websocket_base_url=f"ws://127.0.0.1:{server.port}/openai")
        return client.beta.realtime.connect(model="dep")
    client = AsyncOpenAI(api_key=API_KEY, websocket_base_url=f"ws://127.0.0.1:{server.port}/v1")
    return client.realtime.connect(model="gpt-realtime")


async def until(connection: Any, event_type: str, seen: list[dict] | None = None) -> dict:
    """Read raw server events until one of `event_type` arrives (all of them kept in `seen`)."""
    async with asyncio.timeout(5):
        while True:
            event = json.loads(await connection.recv_bytes())
            if seen is not None:
                seen.append(event)
            if event["type"] == event_type:
                return event


async def ask(connection: Any, text: str, response: dict | None = None, seen: list[dict] | None = None) -> dict:
    """A typed turn: item, response.create, and the response.done that answers it."""
    await connection.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    await connection.send({"type": "response.create", "response": response or {}})
    return (await until(connection, "response.done", seen))["response"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("echo", [True, False])
async def test_metadata_is_echoed_only_when_the_server_does(dialect, echo):
    async with stand_in(echo_metadata=echo) as server, sdk_connection(server, dialect) as connection:
        seen: list[dict] = []
        done = await ask(connection, "こんにちは", {"metadata": {"request_id": "r1"}}, seen)
        created = next(e["response"] for e in seen if e["type"] == "response.created")
        for response in (created, done):
            if echo:
                assert response["metadata"] == {"request_id": "r1"}
            else:
                assert "metadata" not in response


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_text_only_response_streams_text_and_no_audio(dialect):
    delta, done_name, part_type = TEXT_EVENTS[dialect]
    async with stand_in() as server, sdk_connection(server, dialect) as connection:
        seen: list[dict] = []
        response = await ask(connection, "こんにちは", {MODALITIES[dialect]: ["text"]}, seen)
        kinds = [e["type"] for e in seen]
        assert AUDIO_DELTA[dialect] not in kinds and "response.output_audio_transcript.delta" not in kinds
        text = "".join(e["delta"] for e in seen if e["type"] == delta)
        assert text == next(e["text"] for e in seen if e["type"] == done_name) == "echo:こんにちは"
        assert response["output"][0]["content"] == [{"type": part_type, "text": "echo:こんにちは"}]
        assert response[MODALITIES[dialect]] == ["text"]
        assert response["usage"]["output_token_details"]["audio_tokens"] == 0

        seen.clear()
        response = await ask(connection, "もう一度", None, seen)  # the session's default: audio
        assert AUDIO_DELTA[dialect] in [e["type"] for e in seen]
        assert response["usage"]["output_token_details"]["audio_tokens"] > 0

        # Each dialect refuses the other's field, as the service does.
        other = MODALITIES["preview" if dialect == "ga" else "ga"]
        await connection.send({"type": "response.create", "response": {other: ["text"]}})
        error = (await until(connection, "error"))["error"]
        assert error["code"] == "unknown_parameter" and other in error["message"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_usage_rebills_the_conversation_and_counts_the_cached_prefix(dialect):
    async with stand_in() as server, sdk_connection(server, dialect) as connection:
        usages = [(await ask(connection, f"質問{n}です。" * 5, {MODALITIES[dialect]: ["text"]}))["usage"]
                  for n in range(4)]
    for previous, usage in pairwise(usages):
        assert usage["input_tokens"] > previous["input_tokens"] + previous["output_tokens"]  # all of it again
        assert usage["input_token_details"]["cached_tokens"] == previous["input_tokens"]
    for usage in usages:
        details = usage["input_token_details"]
        assert usage["input_tokens"] == details["text_tokens"] + details["audio_tokens"]
        assert usage["output_tokens"] == sum(usage["output_token_details"].values())
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usages[0]["input_token_details"]["cached_tokens"] == 0


async def test_ga_truncation_bounds_the_input_of_a_long_conversation():
    async def input_tokens(truncation: object) -> list[int]:
        async with stand_in(context_token_limit=400) as server, sdk_connection(server, "ga") as connection:
            await connection.send({"type": "session.update", "session": {"type": "realtime",
                                                                         "truncation": truncation}})
            await until(connection, "session.updated")
            return [(await ask(connection, "長い質問です。" * 6, {"output_modalities": ["text"]}))["usage"]
                    ["input_tokens"] for _ in range(20)]

    unbounded = await input_tokens("disabled")
    assert unbounded[-1] > 1000
    for truncation in ("auto", {"type": "retention_ratio", "retention_ratio": 0.5}):
        bounded = await input_tokens(truncation)
        assert max(bounded) <= 400
        assert bounded[:3] == unbounded[:3]


async def test_voice_turn_bills_input_audio_and_silence_before_it_is_not_kept():
    async with stand_in() as server, sdk_connection(server, "ga") as connection:
        await connection.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "transcription": {"model": "whisper-1"},
            "turn_detection": {"type": "server_vad", "prefix_padding_ms": 300, "silence_duration_ms": 500}}}}})
        await until(connection, "session.updated")
        speech = ToneVoice.tone("x" * 10)  # 600 ms
        audio = np.concatenate([np.zeros(SAMPLE_RATE * 30, np.int16), speech, np.zeros(SAMPLE_RATE, np.int16)])
        for chunk in np.array_split(audio, len(audio) // 480):  # 20 ms frames, as a microphone sends them
            await connection.send({"type": "input_audio_buffer.append", "audio": encode_pcm16(chunk)})
        usage = (await until(connection, "response.done"))["response"]["usage"]
    transcriber = server.transcriber
    assert isinstance(transcriber, CountingTranscriber)
    committed_ms = 1000 * transcriber.samples[0] // SAMPLE_RATE
    # prefix padding (+ the detector's slack) + speech + the silence that ended it; not 30 s of silence
    assert 600 + 500 <= committed_ms <= 300 + 100 + 600 + 500 + 100
    assert usage["input_token_details"]["audio_tokens"] == -(-committed_ms // 100)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_session_cap_ends_with_the_services_error_and_close_code(dialect):
    async with stand_in(session_max_seconds=0.5) as server:
        started = time.monotonic()  # before the handshake: the server's clock starts after it
        async with sdk_connection(server, dialect) as connection:
            error = (await until(connection, "error"))["error"]
            assert error["code"] == "session_expired" and "maximum duration" in error["message"]
            with pytest.raises(ConnectionClosed) as closed:
                await until(connection, "never")
            elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert closed.value.rcvd.reason == cap_reason(0.5)
    assert cap_reason(3600) == "Your session hit the maximum duration of 60 minutes."


async def test_drop_cuts_the_connection_without_a_close_frame():
    async with stand_in(drop_every_seconds=0.4) as server:
        started = time.monotonic()  # before the handshake: the server's clock starts after it
        async with sdk_connection(server, "ga") as connection:
            with pytest.raises(ConnectionClosed) as closed:
                await until(connection, "never")
            elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 2
        assert closed.value.rcvd is None  # no close handshake: the client sees 1006
        await asyncio.sleep(0.05)
        assert server.open_connections == 0


async def test_the_instrumented_server_records_only_when_asked():  # long soaks keep nothing
    for record in (False, True):
        async with stand_in(record=record) as server, sdk_connection(server, "ga") as connection:
            await connection.send({"type": "input_audio_buffer.append", "audio": encode_pcm16(ToneVoice.tone("x"))})
            await ask(connection, "こんにちは")
            assert server.open_connections == 1
            if record:
                assert server.connections[0].received_audio.size == ToneVoice.tone("x").size
                assert server.connections[0].sent_of_type("response.done")
            else:
                assert server.connections == []


async def test_a_client_that_leaves_during_the_handshake_is_not_an_error(server, caplog):
    import asyncio
    import logging

    caplog.set_level(logging.DEBUG)
    for request in (b"", b"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer test-key-not-a-secret\r\n\r\n"):
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        await writer.drain()
        writer.transport.abort()  # gone before (or while) the server answers
        await asyncio.sleep(0.2)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
    assert len([r for r in caplog.records if "left during the opening handshake" in r.getMessage()]) >= 1
