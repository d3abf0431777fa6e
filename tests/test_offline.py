"""Offline mode end to end: the app with no cloud credentials, the built-in engine, real TTS, VAD and
speech recognition (the Whisper base test model), spoken to through a WebRTC peer."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from conftest import eventually
from gradio_client import Client
from support.apphost import open_voice, running_app
from support.openmeteo_server import serve_open_meteo
from support.service import InstrumentedServer
from support.whisper_model import plain, whisper_base_dir

from audio import rms
from conversation.tool_runner import CallStatus
from offline.asr import SpeechRecognition
from offline.assistant import OfflineAssistant
from offline.engine import Call, ResponseContext, Say
from offline.runtime import build_offline_server, serve_in_thread
from offline.speech import synthesize
from settings import RealtimeSettings, load_settings
from web.chat import chatbot_messages
from web.labels import notice_label


@pytest.fixture(scope="module")
def offline_app():
    engine = build_offline_server(server_class=InstrumentedServer)
    url = serve_in_thread(engine)
    settings = RealtimeSettings(provider="offline", model="offline-assistant", api_key="offline",
                                base_url=f"{url}/v1")
    with serve_open_meteo() as weather, pytest.MonkeyPatch.context() as env:
        env.setenv("OPEN_METEO_FORECAST_URL", weather.forecast_url)
        env.setenv("OPEN_METEO_GEOCODING_URL", weather.geocoding_url)
        env.setenv("SEARCH_LATENCY_SECONDS", "0.5")
        with running_app(settings=settings) as running:
            yield running, engine, weather


@pytest.fixture(scope="module")
def listening_app():
    """The offline app with speech recognition, as `python app.py` runs it with a model at hand."""
    recognition = SpeechRecognition(str(whisper_base_dir()))
    engine = build_offline_server(recognition=recognition, server_class=InstrumentedServer)
    settings = RealtimeSettings(provider="offline", model="offline-assistant", api_key="offline",
                                base_url=f"{serve_in_thread(engine)}/v1")
    with serve_open_meteo() as weather, pytest.MonkeyPatch.context() as env:
        env.setenv("OPEN_METEO_FORECAST_URL", weather.forecast_url)
        env.setenv("OPEN_METEO_GEOCODING_URL", weather.geocoding_url)
        env.setenv("SEARCH_LATENCY_SECONDS", "6")  # long enough to talk while it runs
        with running_app(settings=settings) as running:
            assert recognition.wait_loaded(60), recognition.problem()
            yield running
    recognition.close()


async def say(voice, text: str) -> None:
    speech = await asyncio.to_thread(synthesize, text)
    voice.microphone.play(np.concatenate([np.zeros(6000, np.int16), speech]))


def said_by(conversation, role: str) -> list[str]:
    shown = chatbot_messages(conversation.transcript.messages())
    return [m["content"] for m in shown if m["role"] == role and m["content"]]


async def test_a_spoken_weather_question_is_heard_and_answered_aloud(listening_app):
    app = listening_app
    voice, conversation = await open_voice(app)
    try:
        await say(voice, "東京の天気は？")
        await eventually(lambda: conversation.tools.calls, 20)
        [call] = conversation.tools.calls.values()
        assert call.name == "get_weather" and json.loads(call.arguments) == {"location": "東京", "day": "today"}
        assert [plain(t) for t in said_by(conversation, "user")] == ["東京の天気は"]
        answer = await eventually(lambda: [t for t in said_by(conversation, "assistant") if "度" in t], 20)
        assert "東京" in answer[0]
        loop = asyncio.get_running_loop()
        await eventually(lambda: rms(voice.received_audio(since=loop.time() - 0.3)) > 300, 10)  # heard, too
    finally:
        await voice.close()


async def test_a_spoken_search_runs_in_the_background_while_the_conversation_goes_on(listening_app):
    app = listening_app
    voice, conversation = await open_voice(app)
    try:
        await say(voice, "AIについて調べて")
        await eventually(lambda: any("検索を開始しました" in t for t in said_by(conversation, "assistant")), 20)
        [search] = conversation.tools.calls.values()
        assert search.name == "search_database" and json.loads(search.arguments) == {"query": "AI"}
        await say(voice, "ありがとう")
        try:
            await eventually(lambda: any("どういたしまして" in t for t in said_by(conversation, "assistant")), 20)
        except TimeoutError:
            raise AssertionError(chatbot_messages(conversation.transcript.messages())) from None
        await eventually(lambda: search.status == CallStatus.DONE, 20)
        title = json.loads(search.output)["result"]["hits"][0]["title"]
        await eventually(lambda: any(title in t for t in said_by(conversation, "assistant")), 20)
        told = said_by(conversation, "assistant")
        thanked = next(i for i, t in enumerate(told) if "どういたしまして" in t)
        assert thanked < next(i for i, t in enumerate(told) if title in t)  # answered before the result came
        assert [plain(t) for t in said_by(conversation, "user")] == ["AIについて調べて", "ありがとう"]
    finally:
        await voice.close()


async def test_without_a_model_the_page_says_why_and_text_still_works(tmp_path):
    recognition = SpeechRecognition(str(tmp_path / "whisper-small"))  # a folder that is not there
    engine = build_offline_server(recognition=recognition, server_class=InstrumentedServer)
    settings = RealtimeSettings(provider="offline", model="offline-assistant", api_key="offline",
                                base_url=f"{serve_in_thread(engine)}/v1")
    with running_app(settings=settings) as app:
        voice, conversation = await open_voice(app)
        try:
            await say(voice, "東京の天気は？")
            await eventually(lambda: "見つかりません" in notice_label(conversation.snapshot().notice), 20)
            assert "whisper-small" in notice_label(conversation.snapshot().notice)
            reply = await eventually(lambda: [t for t in said_by(conversation, "assistant") if "テキストで入力" in t],
                                     20)
            assert "音声認識" in reply[0] and "見つかりません" in reply[0]
            turn = await conversation.send_text("こんにちは")
            await eventually(turn.done.is_set, 20)
            assert "こんにちは" in conversation.turn_text(turn)
        finally:
            await voice.close()
            recognition.close()


def test_no_credentials_means_offline():
    settings = load_settings({}).realtime
    assert settings.provider == "offline" and settings.dialect == "ga"
    assert "オフライン" in settings.label


async def test_typed_search_runs_the_tool_and_speaks_a_real_hit(offline_app):
    app, engine, _weather = offline_app
    voice, conversation = await open_voice(app)
    try:
        turn = await conversation.send_text("AIについて調べて")
        await eventually(turn.done.is_set, 30)
        calls = list(conversation.tools.calls.values())
        assert len(calls) == 1, chatbot_messages(conversation.transcript.messages())
        search = calls[0]
        assert search.name == "search_database" and json.loads(search.arguments) == {"query": "AI"}
        assert search.status == CallStatus.DONE
        result = json.loads(search.output)["result"]
        told = conversation.turn_text(turn)
        assert "検索を開始しました" in told
        assert result["hits"][0]["title"] in told  # the spoken summary names a real article
        record = next(c for c in engine.connections if c.of_type("conversation.item.create"))
        spoken = [e for e in record.sent_of_type("response.output_audio.delta")]
        assert spoken, "the engine speaks its answers"
        await eventually(lambda: rms(voice.received_audio()) > 300, 10)
    finally:
        await voice.close()


def test_weather_call_has_the_right_arguments(offline_app):
    app, _engine, weather = offline_app
    client = Client(app.url, verbose=False)
    reply = client.predict("明日の大阪の天気は？", api_name="/chat")
    rows = client.predict(api_name="/tool_status")
    assert rows[0][1] == "get_weather" and rows[0][3] == "完了"
    assert json.loads(rows[0][2]) == {"location": "大阪", "day": "tomorrow"}
    assert weather.forecast_requests, "the real weather client asked the (local) Open-Meteo"
    assert "明日" in reply and "大阪" in reply and "度" in reply


def test_unknown_request_gets_an_honest_reply(offline_app):
    app, *_ = offline_app
    reply = Client(app.url, verbose=False).predict("量子コンピュータで株価を予測して", api_name="/chat")
    assert "オフライン" in reply


async def test_voice_turn_is_detected_and_honestly_not_transcribed(offline_app):
    app, engine, _ = offline_app
    voice, conversation = await open_voice(app)
    try:
        speech = await asyncio.to_thread(synthesize, "東京の天気を教えてください")
        voice.microphone.play(np.concatenate([np.zeros(12000, np.int16), speech]))
        record = await eventually(lambda: next((c for c in engine.connections
                                                if c.sent_of_type("input_audio_buffer.speech_stopped")), None), 15)
        assert record.sent_of_type("input_audio_buffer.speech_started")
        await eventually(lambda: record.sent_of_type("conversation.item.input_audio_transcription.failed"), 5)
        await eventually(lambda: any("音声認識" in said for said in said_by(conversation, "assistant")), 15)
        user_turns = said_by(conversation, "user")
        assert user_turns == ["（音声を文字にできませんでした）"]  # no made-up transcript
    finally:
        await voice.close()


async def test_barge_in_stops_a_spoken_answer(offline_app):
    app, engine, _ = offline_app
    voice, conversation = await open_voice(app)
    try:
        await conversation.send_text("何ができますか")  # a long spoken help text
        loop = asyncio.get_running_loop()
        await eventually(lambda: rms(voice.received_audio(since=loop.time() - 0.3)) > 300, 15)
        speech = await asyncio.to_thread(synthesize, "ちょっと待って")
        voice.microphone.play(speech)
        await eventually(lambda: conversation.interruptions > 0, 10)
        interrupted_at = loop.time()
        await asyncio.sleep(0.6)
        assert rms(voice.received_audio(since=interrupted_at + 0.15, until=interrupted_at + 0.6)) < 50
        record = engine.connections[-1]
        await eventually(lambda: record.of_type("conversation.item.truncate"), 5)
        assert not [e for e in record.sent_of_type("error") if "truncate" in json.dumps(e)]
    finally:
        await voice.close()


async def test_one_response_answers_a_question_and_a_tool_result_that_arrived_together():
    result = {"status": "completed", "result": {"query": "AI", "total": 1, "query_ms": 1.0, "hits": [
        {"title": "AIの歴史", "snippet": "人工知能の研究は…", "tags": [], "date": "", "source": "", "score": 1.0}]}}
    items = [
        {"id": "u1", "type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "AIについて調べて"}]},
        {"id": "f1", "type": "function_call", "call_id": "c1", "name": "search_database", "arguments": "{}",
         "object": "realtime.item"},
        {"id": "o1", "type": "function_call_output", "call_id": "c1", "output": '{"status": "started"}'},
        {"id": "a1", "type": "message", "role": "assistant", "object": "realtime.item", "content": []},
        {"id": "u2", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "東京の天気は？"}]},
        {"id": "f2", "type": "function_call", "call_id": "c1_r", "name": "search_database", "arguments": "{}"},
        {"id": "o2", "type": "function_call_output", "call_id": "c1_r", "output": json.dumps(result)},
    ]
    outputs = await OfflineAssistant().respond(ResponseContext(items, [], "auto", ""))
    assert outputs[0] == Call("get_weather", json.dumps({"location": "東京", "day": "today"}, ensure_ascii=False))
    assert isinstance(outputs[1], Say) and "AIの歴史" in outputs[1].text


def voice_item(transcript: str | None) -> dict:
    return {"id": "u1", "type": "message", "role": "user",
            "content": [{"type": "input_audio", "transcript": transcript}]}


async def test_what_whisper_invents_on_noise_is_not_answered():
    rules = OfflineAssistant()
    assert await rules.respond(ResponseContext([voice_item("ご視聴ありがとうございました")], [], "auto", "")) == []
    assert await rules.respond(ResponseContext([voice_item("")], [], "auto", "")) == []
    [answer] = await rules.respond(ResponseContext([voice_item("ありがとうございました")], [], "auto", ""))
    assert isinstance(answer, Say) and "どういたしまして" in answer.text
    [untranscribed] = await OfflineAssistant(lambda: "モデルがありません。").respond(
        ResponseContext([voice_item(None)], [], "auto", ""))
    assert "モデルがありません。" in untranscribed.text
