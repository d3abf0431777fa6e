"""The offline engine with a local language model: a Chat Completions stand-in on a real socket, reached
through the `openai` SDK; the app's conversation, tool runner and table on the other side."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from conftest import eventually
from openai import AsyncOpenAI
from support.chat_server import ChatServer, Reply
from support.openmeteo_server import serve_open_meteo
from support.service import InstrumentedServer

from conversation.conversation import Conversation
from conversation.tool_runner import CallStatus
from offline import replies
from offline.assistant import OfflineAssistant
from offline.engine import Call, ResponseContext, Say
from offline.llm import LanguageModelAssistant
from offline.runtime import build_offline_server
from offline.speech import synthesize
from settings import OfflineSettings, RealtimeSettings, load_settings
from tools import Toolbox
from web.chat import chatbot_messages

WEATHER = '{"location": "東京", "day": "today"}'

BUILT_IN_TOOLS = {"get_weather", "search_database", "cancel_tool", "list_running_tools"}


def last_message(body: dict[str, Any]) -> dict[str, Any]:
    return body["messages"][-1]


@pytest.fixture(scope="module", autouse=True)
def voice_ready():
    synthesize("準備")  # the first synthesis loads the dictionary (seconds): not part of any answer


@pytest.fixture(autouse=True)
def local_services(monkeypatch):
    with serve_open_meteo() as weather:
        monkeypatch.setenv("OPEN_METEO_FORECAST_URL", weather.forecast_url)
        monkeypatch.setenv("OPEN_METEO_GEOCODING_URL", weather.geocoding_url)
        monkeypatch.setenv("SEARCH_LATENCY_SECONDS", "0.5")
        yield


async def engine_with(chat: ChatServer) -> InstrumentedServer:
    await chat.start()
    language_model = OfflineSettings(llm_base_url=chat.base_url, llm_model="stand-in")
    server = build_offline_server(speed=16.0, language_model=language_model, server_class=InstrumentedServer)
    await server.start()
    return server


async def conversation_on(server: InstrumentedServer) -> Conversation:
    tools = Toolbox.from_settings(load_settings(os.environ))  # the local Open-Meteo, a short search
    conversation = Conversation(RealtimeSettings(provider="offline", model="offline-assistant", api_key="offline",
                                            base_url=f"{server.url}/v1"), tools)
    conversation.voice_attached = True  # someone listens: answers are spoken
    conversation.start()
    assert await conversation.wait_connected(10)
    return conversation


async def test_streamed_text_is_spoken_sentence_by_sentence():
    chat = ChatServer(lambda body: Reply(text=["こんにちは。", "今日は", "何をお調べしましょうか？"], hold_before=2))
    server = await engine_with(chat)
    conversation = await conversation_on(server)
    try:
        turn = await conversation.send_text("こんにちは")
        await eventually(chat.held.is_set, 10)
        record = server.connections[-1]
        # The first sentence is heard while the model is still writing the second.
        await eventually(lambda: record.sent_of_type("response.output_audio.delta"), 10)
        assert chat.held.is_set()
        chat.release.set()
        await eventually(turn.done.is_set, 20)
        assert conversation.turn_text(turn) == "こんにちは。今日は何をお調べしましょうか？"
        body = chat.requests[0]
        assert body["model"] == "stand-in" and body["stream"] is True
        assert body["messages"][0]["role"] == "system" and "get_weather" in body["messages"][0]["content"]
        assert last_message(body) == {"role": "user", "content": "こんにちは"}
        assert {t["function"]["name"] for t in body["tools"]} == BUILT_IN_TOOLS
    finally:
        await conversation.close()
        await server.stop()
        await chat.stop()


def weather_then_words(body: dict[str, Any]) -> Reply:
    last = last_message(body)
    if last["role"] == "user":
        return Reply(calls=[("get_weather", WEATHER)])
    result = json.loads(last["content"])["result"]
    return Reply(text=[f"{result['place']}は{result['weather']}です。"])


async def test_a_streamed_tool_call_runs_in_the_app_and_its_result_is_told():
    chat = ChatServer(weather_then_words)
    server = await engine_with(chat)
    conversation = await conversation_on(server)
    try:
        turn = await conversation.send_text("東京の天気は？")
        await eventually(turn.done.is_set, 20)
        [call] = conversation.tools.calls.values()
        assert (call.name, json.loads(call.arguments), call.status) == ("get_weather", json.loads(WEATHER),
                                                                        CallStatus.DONE)
        result = json.loads(call.output)["result"]
        assert conversation.turn_text(turn) == f"{result['place']}は{result['weather']}です。"
        second = chat.requests[1]["messages"]
        assert second[-2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": WEATHER}
        assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == second[-2]["tool_calls"][0]["id"]
    finally:
        await conversation.close()
        await server.stop()
        await chat.stop()


def search_in_the_background(body: dict[str, Any]) -> Reply:
    last = last_message(body)
    if last["role"] == "user":
        if "調べて" in last["content"]:
            return Reply(calls=[("search_database", '{"query": "AI"}')])
        return Reply(text=["どういたしまして。"])
    output = json.loads(last["content"])
    if output["status"] == "started":
        return Reply(text=["検索を開始しました。"])
    return Reply(text=[f"見つかった記事は「{output['result']['hits'][0]['title']}」です。"])


async def test_a_long_tool_runs_in_the_background_and_the_conversation_goes_on(monkeypatch):
    monkeypatch.setenv("SEARCH_LATENCY_SECONDS", "3")
    chat = ChatServer(search_in_the_background)
    server = await engine_with(chat)
    conversation = await conversation_on(server)
    try:
        turn = await conversation.send_text("AIについて調べて")
        said = lambda: [m["content"] for m in chatbot_messages(conversation.transcript.messages())  # noqa: E731
                        if m["role"] == "assistant"]
        await eventually(lambda: "検索を開始しました。" in said(), 20)
        [call] = conversation.tools.calls.values()
        assert call.status == CallStatus.RUNNING
        thanks = await conversation.send_text("ありがとう")  # the conversation goes on while the search runs
        await eventually(thanks.done.is_set, 20)
        assert said()[-1] == "どういたしまして。" and call.status == CallStatus.RUNNING
        await eventually(turn.done.is_set, 20)
        assert call.status == CallStatus.DONE
        title = json.loads(call.output)["result"]["hits"][0]["title"]
        assert said()[-1] == f"見つかった記事は「{title}」です。"
        assert not server.connections[-1].sent_of_type("error")
    finally:
        await conversation.close()
        await server.stop()
        await chat.stop()


@pytest.mark.parametrize(("name", "arguments", "error"), [
    ("get_weather", '{"location": "東京"', "JSON"),  # the model's JSON is cut short
    ("get_stock_price", '{"code": "7203"}', "というツールはありません"),
])
async def test_a_bad_tool_call_gets_an_error_the_model_reads(name, arguments, error):
    def answer(body: dict[str, Any]) -> Reply:
        if last_message(body)["role"] == "user":
            return Reply(calls=[(name, arguments)])
        return Reply(text=["すみません、失敗しました。"])

    chat = ChatServer(answer)
    server = await engine_with(chat)
    conversation = await conversation_on(server)
    try:
        turn = await conversation.send_text("トヨタの株価と東京の天気は？")
        await eventually(turn.done.is_set, 20)
        [call] = conversation.tools.calls.values()
        assert call.status == CallStatus.FAILED
        told = chat.requests[1]["messages"][-1]
        assert told["role"] == "tool" and error in json.loads(told["content"])["error"]
        assert conversation.turn_text(turn) == "すみません、失敗しました。"
        assert not server.connections[-1].sent_of_type("error")
    finally:
        await conversation.close()
        await server.stop()
        await chat.stop()


@pytest.mark.parametrize("failure", ["dropped mid-answer", "server gone"])
async def test_a_lost_model_is_said_plainly_and_the_rules_take_over(failure):
    chat = ChatServer(lambda body: Reply(text=["東京の", "天気は"], drop_after=1))
    server = await engine_with(chat)
    if failure == "server gone":
        await chat.stop()
    conversation = await conversation_on(server)
    try:
        turn = await conversation.send_text("東京の天気は？")
        await eventually(turn.done.is_set, 30)
        text = conversation.turn_text(turn)
        assert replies.model_unreachable_reply() in text
        [call] = conversation.tools.calls.values()  # the rules asked for the forecast
        assert call.name == "get_weather" and call.status == CallStatus.DONE
        assert "東京" in text and "度" in text
        assert not server.connections[-1].sent_of_type("error")
        asked = len(chat.requests)
        again = await conversation.send_text("ありがとう")  # the rules keep answering for a while, without retrying
        await eventually(again.done.is_set, 20)
        assert "どういたしまして" in conversation.turn_text(again) and len(chat.requests) == asked
    finally:
        await conversation.close()
        await server.stop()
        await chat.stop()


async def test_cancelling_a_response_hangs_up_on_the_model():
    """Barge-in cancels the response; the model's stream is closed rather than left generating."""
    chat = ChatServer(lambda body: Reply(text=["長いお話をします。", "まだ続きます。"], hold_before=1))
    server = await engine_with(chat)
    client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key="offline")
    try:
        async with client.realtime.connect(model="offline-assistant") as connection:
            await connection.conversation.item.create(
                item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "話して"}]})
            await connection.response.create()
            async for event in connection:
                if event.type == "response.output_audio.delta":
                    break
            await connection.response.cancel()
            async for event in connection:
                if event.type == "response.done":
                    assert event.response.status == "cancelled"
                    break
        await eventually(lambda: chat.left_early == 1, 5)
    finally:
        await client.close()
        await server.stop()
        await chat.stop()


async def test_voice_turns_without_words_never_reach_the_model():
    chat = ChatServer(lambda body: Reply(text=["はい。"]))
    await chat.start()
    assistant = LanguageModelAssistant(AsyncOpenAI(base_url=chat.base_url, api_key="local"), "stand-in",
                                       OfflineAssistant(lambda: "モデルがありません。"), lambda: "モデルがありません。")
    try:
        def voice(transcript: str | None) -> ResponseContext:
            item = {"id": "u1", "type": "message", "role": "user",
                    "content": [{"type": "input_audio", "transcript": transcript}]}
            return ResponseContext([item], [], "auto", "")

        assert await assistant.respond(voice("ご視聴ありがとうございました")) == []
        [untranscribed] = await assistant.respond(voice(None))
        assert "モデルがありません。" in untranscribed.text
        assert chat.requests == []
        assert await assistant.respond(voice("こんにちは")) == [Say("はい。")]
        assert chat.requests[0]["messages"][-1] == {"role": "user", "content": "こんにちは"}
    finally:
        await chat.stop()



async def answer_to(text: str, pieces: list[str]) -> list[Say | Call]:
    """What the assistant makes of a typed `text` when the model streams `pieces`."""
    chat = ChatServer(lambda body: Reply(text=pieces))
    await chat.start()
    assistant = LanguageModelAssistant(AsyncOpenAI(base_url=chat.base_url, api_key="local"), "stand-in",
                                       OfflineAssistant(lambda: ""))
    try:
        item = {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        return await assistant.respond(ResponseContext([item], [], "auto", ""))
    finally:
        await chat.stop()


@pytest.mark.parametrize("pieces", [["<think>", "天気を調べるべきか考える。", "</think>"], ["<think>考え中"], []])
async def test_a_reply_of_thoughts_only_is_never_an_empty_answer(pieces):
    assert await answer_to("こんにちは", pieces) == [Say(replies.model_said_nothing_reply())]


async def test_thoughts_before_the_answer_are_not_spoken():
    answer = await answer_to("元気？", ["<think>短く答える。</think>", "はい、", "元気です。"])
    assert answer == [Say("はい、元気です。")]
