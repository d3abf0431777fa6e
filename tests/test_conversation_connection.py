"""A conversation against the local Realtime server, over a real WebSocket via the SDK."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import API_KEY, ToneVoice, eventually, settings_for

from conversation.conversation import ConnectionState, Conversation
from offline.engine import Say
from settings import RealtimeSettings
from web.chat import chatbot_messages
from web.labels import notice_label

FLAVOURS = ["azure-ga", "azure-preview", "openai"]

BUILT_IN_TOOLS = {"get_weather", "search_database", "cancel_tool", "list_running_tools"}


async def open_conversation(settings: RealtimeSettings) -> Conversation:
    conversation = Conversation(settings)
    conversation.start()
    assert await conversation.wait_connected(5), conversation.notice
    return conversation


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_session_update_per_dialect_and_text_turn(server, flavour):
    conversation = await open_conversation(settings_for(server, flavour))
    try:
        turn = await conversation.send_text("こんにちは")
        await eventually(turn.done.is_set)
        assert conversation.turn_text(turn) == "echo:こんにちは"
        record = server.connections[0]
        update = record.received[0]
        assert update["type"] == "session.update"
        cfg = update["session"]
        if flavour == "azure-preview":
            assert record.path.startswith("/openai/realtime?")
            assert "api-version=2025-04-01-preview" in record.path and "deployment=my-realtime" in record.path
            assert cfg["input_audio_format"] == "pcm16" and cfg["output_audio_format"] == "pcm16"
            assert cfg["input_audio_transcription"] == {"model": "whisper-1", "language": "ja"}
            assert cfg["turn_detection"]["threshold"] == 0.6
            assert record.headers.get("api-key") == API_KEY
        else:
            assert record.path.startswith("/openai/v1/realtime?model=my-realtime" if flavour == "azure-ga"
                                          else "/v1/realtime?model=gpt-realtime")
            assert "api-version" not in record.path
            assert cfg["type"] == "realtime"
            assert cfg["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
            assert cfg["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
            vad = cfg["audio"]["input"]["turn_detection"]
            assert (vad["threshold"], vad["silence_duration_ms"], vad["prefix_padding_ms"]) == (0.6, 700, 300)
            assert cfg["audio"]["input"]["transcription"]["language"] == "ja"
        assert {t["name"] for t in cfg["tools"]} == BUILT_IN_TOOLS
        assert chatbot_messages(conversation.transcript.messages()) == [
            {"role": "user", "content": "こんにちは"},
            {"role": "assistant", "content": "echo:こんにちは"},
        ]
        errors = record.sent_of_type("error")
        assert errors == []
    finally:
        await conversation.close()


async def test_voice_turn_appends_pcm16_and_orders_late_transcript(server):
    conversation = await open_conversation(settings_for(server, "azure-ga"))
    conversation.voice_attached = True
    try:
        server.next_transcript = "東京の天気は？"
        speech = ToneVoice.tone("あいうえおかきくけこ")
        for chunk in np.array_split(np.concatenate([speech, np.zeros(24000, np.int16)]), 40):
            await conversation.append_audio(chunk)
        await eventually(lambda: len(chatbot_messages(conversation.transcript.messages())) == 2 and "echo" in
                         chatbot_messages(conversation.transcript.messages())[1]["content"])
        record = server.connections[0]
        appends = record.of_type("input_audio_buffer.append")
        assert len(appends) == 40
        audio = record.received_audio
        assert audio.size == speech.size + 24000  # 24 kHz PCM16, nothing lost or resampled
        assert np.abs(audio[: speech.size].astype(int)).max() > 7000
        messages = chatbot_messages(conversation.transcript.messages())
        assert messages[0] == {"role": "user", "content": "東京の天気は？"}
        assert messages[1]["role"] == "assistant"
    finally:
        await conversation.close()


async def test_wrong_key_is_a_clear_message(server):
    settings = settings_for(server, "azure-ga")
    settings = RealtimeSettings(**{**settings.__dict__, "api_key": "wrong"})
    conversation = Conversation(settings)
    conversation.start()
    try:
        await eventually(lambda: conversation.state == ConnectionState.FAILED)
        assert "認証に失敗しました" in notice_label(conversation.notice)
        assert "wrong" not in notice_label(conversation.notice)
    finally:
        await conversation.close()


async def test_rate_limit_at_handshake_is_shown_and_retried(server):
    server.reject_status = 429
    conversation = Conversation(settings_for(server, "azure-ga"))
    conversation.start()
    try:
        await eventually(lambda: "429" in notice_label(conversation.notice))
        server.reject_status = None
        assert await conversation.wait_connected(5)
    finally:
        await conversation.close()


async def test_reconnect_resends_config_then_replays_context(server):
    conversation = await open_conversation(settings_for(server, "azure-preview"))
    try:
        turn = await conversation.send_text("覚えて: 青")
        await eventually(turn.done.is_set)
        await server.drop_all()
        await eventually(lambda: len(server.connections) == 2 and conversation.connected)
        second = server.connections[1]
        await eventually(lambda: len(second.of_type("conversation.item.create")) >= 2)
        assert second.received[0]["type"] == "session.update"
        replayed = [e["item"] for e in second.of_type("conversation.item.create")]
        assert replayed[0]["content"] == [{"type": "input_text", "text": "覚えて: 青"}]
        assert replayed[1]["role"] == "assistant" and replayed[1]["content"][0] == {"type": "text",
                                                                                 "text": "echo:覚えて: 青"}
        turn = await conversation.send_text("何色？")
        await eventually(turn.done.is_set)
        assert conversation.turn_text(turn) == "echo:何色？"
    finally:
        await conversation.close()


async def test_missing_settings_answer_at_once_with_what_to_set():
    conversation = Conversation(RealtimeSettings(provider="azure", endpoint="https://x.openai.azure.com",
                                                   model="dep"))
    conversation.start()
    try:
        assert not await conversation.wait_connected(5)
        assert conversation.gave_up and "AZURE_OPENAI_API_KEY" in notice_label(conversation.notice)
        turn = await conversation.send_text("こんにちは")
        assert turn.done.is_set()
    finally:
        await conversation.close()


async def test_text_typed_while_reconnecting_is_sent_after_the_replay(server):
    conversation = await open_conversation(settings_for(server, "azure-ga"))
    try:
        server.reject_status = 503
        await server.drop_all()
        await eventually(lambda: not conversation.connected)
        turn = await conversation.send_text("切断中の質問")
        server.reject_status = None
        await eventually(turn.done.is_set, 10)
        assert conversation.turn_text(turn) == "echo:切断中の質問"
    finally:
        await conversation.close()


async def test_barge_in_before_anything_was_heard_deletes_the_answer(server, assistant):
    assistant.rules = {r"長く": lambda m: [Say("とても長い答えです。" * 10)]}
    conversation = await open_conversation(settings_for(server, "azure-ga"))
    conversation.voice_attached = True  # nobody plays it: nothing is heard
    try:
        await conversation.send_text("長く話して")
        record = server.connections[0]
        await eventually(lambda: record.sent_of_type("response.output_audio.delta"))
        await conversation.append_audio(np.concatenate([ToneVoice.tone("あいうえお"), np.zeros(24000, np.int16)]))
        deleted = (await eventually(lambda: record.of_type("conversation.item.delete")))[0]["item_id"]
        assert not record.of_type("conversation.item.truncate")
        assert conversation.transcript.get(deleted) is None
        await eventually(lambda: record.sent_of_type("conversation.item.deleted"))
        assert record.sent_of_type("error") == []
    finally:
        await conversation.close()
