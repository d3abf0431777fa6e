"""Conversation behaviour the real service exposes: responses without echoed metadata, text-only
responses for text-only callers, one answer per message, and turns that survive drops and the
service's session cap. Each runs against the local Realtime server over a real socket."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from conftest import API_KEY, ToneVoice, eventually, settings_for
from support.service import InstrumentedServer

from conversation.conversation import Conversation
from offline.speech import EnergySpeechDetector
from web.chat import chatbot_messages

FLAVOURS = ["azure-ga", "azure-preview"]


def wire_server(assistant, **options) -> InstrumentedServer:
    return InstrumentedServer(lambda: assistant, ToneVoice, lambda: EnergySpeechDetector(threshold=500.0),
                              api_key=API_KEY, speed=8.0, **options)


async def connected(server: InstrumentedServer, flavour: str) -> Conversation:
    conversation = Conversation(settings_for(server, flavour))
    conversation.start()
    assert await conversation.wait_connected(5), conversation.notice
    return conversation


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_answers_are_recognised_when_the_service_does_not_echo_metadata(assistant, flavour):
    server = wire_server(assistant, echo_metadata=False)
    await server.start()
    conversation = await connected(server, flavour)
    try:
        for text in ("一つ目です", "二つ目です"):
            started = time.monotonic()
            turn = await conversation.send_text(text)
            await eventually(turn.done.is_set, 3)
            assert conversation.turn_text(turn) == f"echo:{text}"
            assert time.monotonic() - started < 3
        created = server.connections[-1].sent_of_type("response.created")
        assert created and all("metadata" not in e["response"] for e in created)  # the stand-in really withheld it
    finally:
        await conversation.close()
        await server.stop()


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("listening", [False, True], ids=["nobody-listening", "voice-call"])
async def test_answers_are_audio_only_for_a_listener(server, flavour, listening):
    preview = flavour == "azure-preview"
    conversation = await connected(server, flavour)
    conversation.voice_attached = listening
    try:
        turn = await conversation.send_text("こんにちは")
        await eventually(turn.done.is_set)
        assert conversation.turn_text(turn) == "echo:こんにちは"
        record = server.connections[-1]
        request = record.of_type("response.create")[-1]["response"]
        asked = request.get("modalities" if preview else "output_modalities")
        assert asked == (None if listening else ["text"])  # a listener gets the session's audio
        text_delta = "response.text.delta" if preview else "response.output_text.delta"
        audio_delta = "response.audio.delta" if preview else "response.output_audio.delta"
        assert bool(record.sent_of_type(audio_delta)) == listening
        assert bool(record.sent_of_type(text_delta)) != listening
    finally:
        await conversation.close()


async def test_simultaneous_messages_each_get_their_own_answer_in_order(server):
    conversation = await connected(server, "azure-ga")
    fruits = ["りんご", "みかん", "ぶどう", "もも"]
    try:
        turns = await asyncio.gather(*(conversation.send_text(f"{f}が好きです") for f in fruits))
        await asyncio.gather(*(eventually(t.done.is_set, 10) for t in turns))
        assert [conversation.turn_text(t) for t in turns] == [f"echo:{f}が好きです" for f in fruits]
        chat = [m["content"] for m in chatbot_messages(conversation.snapshot().messages)]
        expected = []
        for fruit in fruits:
            expected += [f"{fruit}が好きです", f"echo:{fruit}が好きです"]
        assert chat == expected  # each answer right after its question, one bubble each
        assert len(server.connections[-1].of_type("response.create")) == len(fruits)
    finally:
        await conversation.close()


async def test_every_message_is_answered_through_connection_drops(assistant):
    server = wire_server(assistant, drop_every_seconds=1.0)
    await server.start()
    conversation = await connected(server, "azure-ga")
    try:
        answered, n, until = 0, 0, time.monotonic() + 4.5
        while time.monotonic() < until:
            turn = await conversation.send_text(f"質問{n}")
            await eventually(turn.done.is_set, 10)
            assert not turn.unanswered
            answered += conversation.turn_text(turn).startswith("echo:")
            n += 1
            await asyncio.sleep(0.1)
        assert len(server.connections) >= 4  # it really dropped several times
        assert answered >= n - 2  # an answer cut after its first words is kept as it was
        user_texts = [m["content"] for m in chatbot_messages(conversation.snapshot().messages) if m["role"] == "user"]
        assert user_texts == [f"質問{i}" for i in range(n)]
    finally:
        await conversation.close()
        await server.stop()


async def test_moves_to_a_fresh_session_before_the_cap_and_keeps_the_context(assistant):
    server = wire_server(assistant, session_max_seconds=2.0)
    await server.start()
    conversation = Conversation(replace(settings_for(server, "azure-ga"), rotate_after=1.0))
    conversation.start()
    assert await conversation.wait_connected(5)
    try:
        await eventually((await conversation.send_text("私の名前は太郎です")).done.is_set)
        await eventually(lambda: len(server.connections) >= 3, 6)
        turn = await conversation.send_text("覚えていますか")
        await eventually(turn.done.is_set)
        assert conversation.turn_text(turn) == "echo:覚えていますか"
        assert conversation.link.rotations >= 2
        assert not conversation.notice  # a planned move is not a drop
        assert not any(r.sent_of_type("error") for r in server.connections)  # the cap never cut us off
        for record in server.connections[1:]:
            first = record.received[0]["type"]
            created = record.of_type("conversation.item.create")
            replayed = [e["item"].get("content", [{}])[0].get("text") for e in created]
            assert first == "session.update" and "私の名前は太郎です" in replayed
    finally:
        await conversation.close()
        await server.stop()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_malformed_event_is_one_log_line_at_the_edge(server, flavour, caplog):
    conversation = await connected(server, flavour)
    delta = "response.audio.delta" if flavour == "azure-preview" else "response.output_audio.delta"
    try:
        engine = server.connections[-1].session
        for bad in ({"type": "response.created"}, {"type": delta, "delta": "AAAA"},
                    {"type": "response.done", "response": {"status": "completed"}},
                    {"type": "response.output_item.added", "item": "not an object"}):
            await engine.emit_raw({"event_id": "evt_bad", **bad})
        await server.connections[-1].connection.send("not json")
        turn = await conversation.send_text("まだ話せますか")
        await eventually(turn.done.is_set)
        assert conversation.turn_text(turn) == "echo:まだ話せますか"
        dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
        assert len(dropped) == 5 and not any(r.exc_info for r in caplog.records)
        assert not any(r.levelname == "ERROR" for r in caplog.records)
    finally:
        await conversation.close()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_history_limit_asks_ga_to_truncate_and_bounds_the_replay(server, flavour):
    settings = replace(settings_for(server, flavour), history_tokens=4000, replay_items=2)
    conversation = Conversation(settings)
    conversation.start()
    try:
        assert await conversation.wait_connected(5)
        for text in ("一", "二", "三"):
            await eventually((await conversation.send_text(text)).done.is_set)
        update = server.connections[-1].of_type("session.update")[0]["session"]
        if flavour == "azure-ga":
            assert update["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.8,
                                            "token_limits": {"post_instructions": 4000}}
        else:
            assert "truncation" not in update  # the preview protocol has no such setting
        await server.drop_all()
        await eventually(lambda: len(server.connections) == 2)
        await eventually(lambda: conversation.connected)
        replayed = [e["item"]["id"] for e in server.connections[-1].of_type("conversation.item.create")]
        items = [i.item_id for i in conversation.transcript.items]
        assert replayed == items[-2:]  # the newest two: the last question and its answer
    finally:
        await conversation.close()
