"""Asynchronous function calling end to end: session ↔ local Realtime server ↔ real tools."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import ToneVoice, call, eventually, settings_for
from support.openmeteo_server import serve_open_meteo

from conversation.conversation import Conversation
from conversation.tool_runner import CallStatus
from offline.engine import Call
from settings import load_settings
from tools import Toolbox, ToolError, ToolRegistry, registry
from web.chat import chatbot_messages
from web.labels import notice_label


@pytest.fixture
def weather_env():
    with serve_open_meteo() as weather:
        yield weather


def toolbox(weather=None, search_latency: float = 0.0, tools: ToolRegistry = registry) -> Toolbox:
    """The tools as the app builds them from its settings, with the weather served by the local stand-in."""
    settings = replace(load_settings(), search_latency=search_latency,
                       forecast_url=weather and weather.forecast_url, geocoding_url=weather and weather.geocoding_url)
    return Toolbox.from_settings(settings, tools)


async def open_conversation(server, tools: Toolbox | None = None, flavour: str = "azure-ga") -> Conversation:
    conversation = Conversation(settings_for(server, flavour), tools=tools or toolbox())
    conversation.start()
    assert await conversation.wait_connected(5), (conversation.state, conversation.notice)
    return conversation


def assistant_texts(conversation: Conversation) -> list[str]:
    return [m["content"] for m in chatbot_messages(conversation.transcript.messages()) if m["role"] == "assistant"]


def no_error_reached_user(conversation: Conversation) -> None:
    notice = notice_label(conversation.notice)
    shown = " ".join(m["content"] for m in chatbot_messages(conversation.transcript.messages())) + notice
    assert "active response" not in shown and "エラー" not in notice


@pytest.mark.parametrize("flavour", ["azure-ga", "azure-preview"])
async def test_weather_answered_while_search_runs_then_search_told(server, assistant, weather_env, flavour):
    assistant.rules = {r"調べて": lambda m: [call("search_database", query="AI")],
                       r"天気": lambda m: [call("get_weather", location="東京", day="today")]}
    conversation = await open_conversation(server, toolbox(weather_env, search_latency=1.5), flavour=flavour)
    try:
        search_turn = await conversation.send_text("AIについて調べて")
        await eventually(lambda: any('"started"' in t for t in assistant_texts(conversation)))
        weather_turn = await conversation.send_text("東京の天気は？")
        await eventually(weather_turn.done.is_set)
        assert not search_turn.done.is_set(), "the search is still running while the weather is answered"
        await eventually(search_turn.done.is_set, 10)
        texts = assistant_texts(conversation)
        started, weather, found = (next(i for i, t in enumerate(texts) if key in t)
                                   for key in ('"started"', '"place"', '"hits"'))
        assert started < weather < found
        result = json.loads(texts[found].removeprefix("result:"))
        assert result["status"] == "completed" and result["result"]["hits"][0]["title"]
        statuses = {c.name: c.status for c in conversation.tools.calls.values()}
        assert statuses == {"search_database": CallStatus.DONE, "get_weather": CallStatus.DONE}
        assert "AI" in conversation.turn_text(search_turn) and '"hits"' in conversation.turn_text(search_turn)
        no_error_reached_user(conversation)
    finally:
        await conversation.close()


async def test_two_searches_and_weather_in_flight_together(server, assistant, weather_env):
    assistant.rules = {r"(\S+)を調べて": lambda m: [call("search_database", query=m.group(1))],
                       r"天気": lambda m: [call("get_weather", location="大阪", day="tomorrow")]}
    conversation = await open_conversation(server, toolbox(weather_env, search_latency=1.0))
    try:
        turns = [await conversation.send_text(t) for t in ("統計を調べて", "音声認識を調べて", "大阪の天気")]
        await eventually(lambda: len(conversation.tools.calls) == 3)
        assert conversation.tools.running >= 2  # both searches at once
        for turn in turns:
            await eventually(turn.done.is_set, 10)
        assert sorted(c.status for c in conversation.tools.calls.values()) == [CallStatus.DONE] * 3
        told = [t for t in assistant_texts(conversation) if '"hits"' in t]
        assert len(told) == 2
        no_error_reached_user(conversation)
    finally:
        await conversation.close()


def failing_registry(invocations: list[str]) -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool()
    async def refuses(reason: str) -> dict:
        """Always fails with a message for the model."""
        invocations.append("refuses")
        raise ToolError(f"できません: {reason}")

    @tools.tool()
    async def crashes() -> dict:
        """A tool with a bug."""
        invocations.append("crashes")
        raise RuntimeError("bug")

    @tools.tool(timeout=0.3)
    async def dawdles() -> dict:
        """Never finishes in time."""
        invocations.append("dawdles")
        await asyncio.sleep(30)
        return {}

    @tools.tool()
    async def counts(n: int) -> dict:
        """Needs an integer."""
        invocations.append("counts")
        return {"n": n}

    return tools


@pytest.mark.parametrize(("output", "status", "error_part"), [
    (Call("refuses", '{"reason": "テスト"}'), CallStatus.FAILED, "できません: テスト"),
    (Call("crashes", "{}"), CallStatus.FAILED, "RuntimeError"),
    (Call("dawdles", "{}"), CallStatus.TIMEOUT, "0.3秒以内"),
    (Call("counts", '{"n": 1'), CallStatus.FAILED, "JSON"),
    (Call("counts", '{"n": "たくさん"}'), CallStatus.FAILED, "引数が不正"),
    (Call("counts", "{}"), CallStatus.FAILED, "n: Field required"),
    (Call("no_such_tool", "{}"), CallStatus.FAILED, "no_such_tool"),
])
async def test_failures_end_the_call_and_the_model_gets_an_output(server, assistant, output, status, error_part):
    invocations: list[str] = []
    assistant.rules = {r"": lambda m: [output]}
    conversation = await open_conversation(server, toolbox(tools=failing_registry(invocations)))
    try:
        turn = await conversation.send_text("やって")
        await eventually(turn.done.is_set, 5)
        (only,) = conversation.tools.calls.values()
        assert only.status == status
        sent = json.loads(next(e["item"]["output"] for e in server.connections[0].of_type("conversation.item.create")
                               if e["item"]["type"] == "function_call_output"))
        assert error_part in sent["error"]
        assert conversation.turn_text(turn).startswith("result:")  # and the model went on to answer
        if output.name in ("counts",) and status == CallStatus.FAILED:
            assert invocations == []  # invalid arguments never reach the function
        no_error_reached_user(conversation)
    finally:
        await conversation.close()


async def test_closing_the_conversation_cancels_running_calls(server, assistant):
    assistant.rules = {r"": lambda m: [call("search_database", query="AI")]}
    conversation = await open_conversation(server, toolbox(search_latency=30))
    await conversation.send_text("調べて")
    await eventually(lambda: conversation.tools.running == 1)
    await conversation.close()
    (search,) = conversation.tools.calls.values()
    assert search.status == CallStatus.CANCELLED
    assert conversation.tools.running == 0
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith(("tool ", "realtime link",
                                                                              "response gate", "session rotation"))]
    assert leftovers == []


async def test_call_of_a_cancelled_response_is_not_run(server, assistant):
    invocations: list[str] = []
    assistant.rules = {r"やって": lambda m: [Call("counts", '{"n": 1}', stream_seconds=1.5)]}
    conversation = await open_conversation(server, toolbox(tools=failing_registry(invocations)))
    conversation.voice_attached = True
    try:
        await conversation.send_text("やって")
        await eventually(lambda: server.connections[0].sent_of_type("response.function_call_arguments.delta"))
        speech = ToneVoice.tone("あいうえお")
        await conversation.append_audio(np.concatenate([speech, np.zeros(24000, np.int16)]))  # barge-in
        (call_record,) = await eventually(lambda: list(conversation.tools.calls.values()), 5)
        assert call_record.status == CallStatus.CANCELLED
        assert invocations == []
        outputs = await eventually(lambda: [e["item"] for e in server.connections[0].of_type("conversation.item.create")
                                            if e["item"]["type"] == "function_call_output"])
        assert json.loads(outputs[0]["output"])["status"] == "cancelled"
        no_error_reached_user(conversation)
    finally:
        await conversation.close()


async def test_status_updates_tick_while_a_tool_runs(server, assistant):
    assistant.rules = {r"": lambda m: [call("search_database", query="AI")]}
    conversation = await open_conversation(server, toolbox(search_latency=3))
    try:
        await conversation.send_text("調べて")
        await eventually(lambda: conversation.tools.running == 1)
        elapsed: list[float] = []
        async with asyncio.timeout(4):
            async for snapshot in conversation.updates():
                running = [c for c in snapshot.calls if c.status == CallStatus.RUNNING]
                if running:
                    elapsed.append(running[0].elapsed())
                if len(elapsed) >= 3 and elapsed[-1] - elapsed[0] >= 1.5:
                    break
        assert elapsed[-1] - elapsed[0] >= 1.5
    finally:
        await conversation.close()


@pytest.mark.parametrize("flavour", ["azure-ga", "azure-preview"])
async def test_a_result_ready_while_the_next_response_is_on_its_way_is_still_told_in_its_turn(server, assistant,
                                                                                               flavour):
    """The service takes a moment to announce a response; a background tool that ends in that moment asks for
    another one. The turn stays open until that one has told the result (the old code ended it one short)."""
    server.created_delay_seconds = 0.3
    tools = ToolRegistry()

    @tools.tool(long_running=True)
    async def quick_search(query: str) -> dict:
        """Ends as soon as the response that says the search started has been asked for."""
        await eventually(lambda: len(server.connections[-1].of_type("response.create")) >= 2, 10)
        return {"found": query}

    assistant.rules = {r"調べて": lambda m: [call("quick_search", query="AI")]}
    conversation = await open_conversation(server, toolbox(tools=tools), flavour=flavour)
    try:
        turn = await conversation.send_text("AIについて調べて")
        await eventually(turn.done.is_set, 15)
        told = conversation.turn_text(turn)
        assert '"started"' in told and '"found": "AI"' in told, told
        assert len(server.connections[-1].of_type("response.create")) == 3
        no_error_reached_user(conversation)
    finally:
        await conversation.close()
