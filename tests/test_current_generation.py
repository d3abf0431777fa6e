"""The current generation's behaviour against the local server, over a real socket through the SDK:
spoken preambles (`phase`), parallel tool calls and the idle timeout, in the GA dialect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import numpy as np
import pytest
from conftest import API_KEY, ScriptedAssistant, ToneVoice, call, eventually, settings_for
from gradio_client import Client
from support.apphost import running_app
from support.openmeteo_server import serve_open_meteo
from support.service import InstrumentedServer

from audio import SAMPLE_RATE
from conversation.conversation import Conversation
from offline.engine import Say
from offline.speech import EnergySpeechDetector
from settings import IDLE_CHECK_IN, VoiceSettings, load_settings
from tools import Toolbox, ToolRegistry
from web.chat import chatbot_messages

# ---- preambles -----------------------------------------------------------------------------------------


class PitchVoice:
    """A preamble (…ね。) is spoken at 440 Hz, everything else at 880 Hz, so a listener can tell them apart."""

    def synthesize(self, text: str) -> Iterator[tuple[str, np.ndarray]]:
        pitch = 440 if text.endswith("ね。") else 880
        t = np.arange(SAMPLE_RATE * 300 // 1000) / SAMPLE_RATE
        yield text, (np.sin(2 * np.pi * pitch * t) * 8000).astype(np.int16)


def pitch_of(frame: np.ndarray) -> int | None:
    if np.abs(frame).max() < 2000:
        return None
    crossings = np.count_nonzero(np.diff(np.signbit(frame.astype(np.int32))))
    sounding = np.count_nonzero(frame)  # a frame's padding is no part of the tone
    return 440 if crossings * SAMPLE_RATE / sounding / 2 < 660 else 880


def lookup_tools() -> Toolbox:
    tools = ToolRegistry()

    @tools.tool()
    async def lookup(topic: str) -> dict:
        """Looks a topic up."""
        return {"topic": topic, "answer": "晴れ"}

    return Toolbox.from_settings(load_settings({}), tools)


@pytest.fixture
async def preamble_server():
    assistant = ScriptedAssistant({r"天気": lambda m: [Say("調べますね。", phase="commentary"),
                                                     call("lookup", topic="天気")]})
    assistant.result_phase = "final_answer"
    server = InstrumentedServer(lambda: assistant, PitchVoice, lambda: EnergySpeechDetector(threshold=500.0),
                                api_key=API_KEY, speed=8.0)
    await server.start()
    yield server
    await server.stop()


async def listen(conversation: Conversation, pitches: list[int]) -> None:
    """Plays the assistant's audio at real time and notes each tone heard."""
    while True:
        frame = conversation.playback.next_frame()
        if frame is None:
            await asyncio.sleep(max(0.005, conversation.playback.wait_time()))
        elif (pitch := pitch_of(frame)) and (not pitches or pitches[-1] != pitch):
            pitches.append(pitch)


async def test_a_preamble_a_tool_call_and_the_final_answer_are_shown_heard_counted_and_replayed(preamble_server):
    server = preamble_server
    conversation = Conversation(settings_for(server, "openai"), tools=lookup_tools())
    conversation.voice_attached = True
    conversation.start()
    pitches: list[int] = []
    listener = asyncio.create_task(listen(conversation, pitches))
    try:
        assert await conversation.wait_connected(5)
        turn = await conversation.send_text("天気を教えて")
        await eventually(turn.done.is_set, 10)
        result = '{"status": "completed", "result": {"topic": "天気", "answer": "晴れ"}}'
        answer = [m["content"] for m in chatbot_messages(conversation.snapshot().messages) if m["role"] == "assistant"]
        assert answer == ["調べますね。", f"result:{result}"]
        assert conversation.turn_text(turn) == f"調べますね。\nresult:{result}"  # what /chat returns
        sent = server.connections[0].sent_of_type("response.output_item.added")
        assert [e["item"].get("phase") for e in sent] == ["commentary", None, "final_answer"]  # None: the call
        await eventually(lambda: pitches == [440, 880], 5)  # the preamble heard first, then the answer
        # Both responses are billed and counted.
        reported = [e["response"]["usage"] for e in server.connections[0].sent_of_type("response.done")]
        summary = conversation.usage_summary()
        assert len(reported) == 2 and summary["totals"]["output_tokens"] == sum(u["output_tokens"] for u in reported)
        # A fresh service session gets both back, in order, around the call and its output.
        await server.drop_all()
        await eventually(lambda: len(server.connections) == 2
                         and len(server.connections[1].of_type("conversation.item.create")) >= 5, 10)
        replayed = [e["item"] for e in server.connections[1].of_type("conversation.item.create")]
        assert [(i["type"], i.get("role")) for i in replayed] == [
            ("message", "user"), ("message", "assistant"), ("function_call", None), ("function_call_output", None),
            ("message", "assistant")]
        assert [i["content"][0]["text"] for i in replayed if i.get("role") == "assistant"] == answer
        assert server.connections[1].sent_of_type("error") == []
    finally:
        listener.cancel()
        await conversation.close()


def test_chat_returns_the_preamble_and_the_answer_after_the_tool_call():
    assistant = ScriptedAssistant({r"天気": lambda m: [Say("調べますね。", phase="commentary"),
                                                     call("get_weather", location="東京", day="today")]})
    assistant.result_phase = "final_answer"
    with serve_open_meteo() as weather, pytest.MonkeyPatch.context() as env:
        env.setenv("OPEN_METEO_FORECAST_URL", weather.forecast_url)
        env.setenv("OPEN_METEO_GEOCODING_URL", weather.geocoding_url)
        with running_app("azure-ga", assistant) as app:
            reply = Client(app.url, verbose=False).predict("東京の天気は？", api_name="/chat")
    preamble, answer = reply.split("\n", 1)
    assert preamble == "調べますね。"
    assert answer.startswith("result:") and "東京" in answer and '"completed"' in answer


# ---- parallel tool calls -------------------------------------------------------------------------------


def parallel_tools(runs: list[tuple[str, float, float]]) -> Toolbox:
    """Tools that take different times and note when each ran (name, start, end); `background` is long-running
    (it answers "started" at once and its result is told later)."""
    tools = ToolRegistry()

    async def run(name: str, seconds: float) -> dict:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(seconds)
        runs.append((name, start, loop.time()))
        return {"tool": name}

    @tools.tool()
    async def quick() -> dict:
        """Answers in a moment."""
        return await run("quick", 0.3)

    @tools.tool()
    async def slower() -> dict:
        """Answers a little later."""
        return await run("slower", 0.9)

    @tools.tool(long_running=True)
    async def background() -> dict:
        """Runs in the background."""
        return await run("background", 0.9)

    return Toolbox.from_settings(load_settings({}), tools)


@contextlib.asynccontextmanager
async def answered(server, text: str, runs: list[tuple[str, float, float]]) -> AsyncIterator[Conversation]:
    """A conversation with the parallel tools, once `text` is answered with everything it caused."""
    conversation = Conversation(settings_for(server, "openai"), tools=parallel_tools(runs))
    conversation.start()
    try:
        assert await conversation.wait_connected(5)
        turn = await conversation.send_text(text)
        await eventually(turn.done.is_set, 10)
        yield conversation
    finally:
        await conversation.close()


def assistant_said(conversation: Conversation) -> list[str]:
    return [m["content"] for m in chatbot_messages(conversation.snapshot().messages) if m["role"] == "assistant"]


async def test_two_calls_in_one_response_run_at_once_and_are_followed_up_once(server, assistant):
    assistant.rules = {r"両方": lambda m: [call("quick"), call("slower")]}
    runs: list[tuple[str, float, float]] = []
    async with answered(server, "両方調べて", runs) as conversation:
        record = server.connections[0]
        first = record.sent_of_type("response.done")[0]["response"]
        assert [i["type"] for i in first["output"]] == ["function_call", "function_call"]  # one response, two calls
        (_, _, end_quick), (_, start_slower, _) = sorted(runs, key=lambda r: r[0])  # quick, slower
        assert start_slower < end_quick, "the calls ran at the same time"
        outputs = [e["item"]["call_id"] for e in record.of_type("conversation.item.create")
                   if e["item"]["type"] == "function_call_output"]
        assert sorted(outputs) == sorted(i["call_id"] for i in first["output"])  # each answered once
        assert len(record.of_type("response.create")) == 2  # the message's, and one follow-up for both
        assert record.sent_of_type("error") == []  # never a create while a response was active
        told = assistant_said(conversation)
        assert len(told) == 2 and '"quick"' in told[0] and '"slower"' in told[1]  # one answer tells both
        assert all(c.output for c in conversation.tools.calls.values())


# ---- the idle timeout ----------------------------------------------------------------------------------


async def test_the_idle_timeout_is_a_gentle_check_in_not_an_error(server, assistant):
    assistant.rules = {r"^$": lambda m: [Say("まだいらっしゃいますか？")]}  # the model hears only silence
    server.next_transcript = None  # and the silence's transcription fails, as it may
    voice = replace(VoiceSettings(), idle_timeout_ms=400)
    conversation = Conversation(replace(settings_for(server, "azure-ga"), voice=voice))
    conversation.voice_attached = True
    conversation.start()
    listener = asyncio.create_task(listen(conversation, []))
    try:
        assert await conversation.wait_connected(5)
        for _ in range(6):  # 0.6 s of silence, a little faster than real time
            await conversation.append_audio(np.zeros(SAMPLE_RATE // 10, np.int16))
            await asyncio.sleep(0.02)
        await eventually(lambda: chatbot_messages(conversation.snapshot().messages) == [
            {"role": "assistant", "content": "まだいらっしゃいますか？"}], 5)
        record = server.connections[0]
        (timeout,) = record.sent_of_type("input_audio_buffer.timeout_triggered")
        assert timeout["audio_end_ms"] - timeout["audio_start_ms"] >= 400
        await server.wait_for(lambda: record.sent_of_type("response.done"))
        assert record.of_type("response.create") == []  # the service answers a timeout itself,
        assert assistant.contexts[-1].instructions.endswith(IDLE_CHECK_IN)  # told by the session how to check in
        assert conversation.notice is None and record.sent_of_type("error") == []
        # Speaking once it has been heard is an ordinary turn.
        await eventually(lambda: not conversation.playback.busy, 5)
        server.next_transcript = "はい、います"
        for chunk in np.array_split(np.concatenate([ToneVoice.tone("あいうえお"), np.zeros(24000, np.int16)]), 10):
            await conversation.append_audio(chunk)
        await eventually(lambda: chatbot_messages(conversation.snapshot().messages)[1:] == [
            {"role": "user", "content": "はい、います"}, {"role": "assistant", "content": "echo:はい、います"}], 5)
    finally:
        listener.cancel()
        await conversation.close()


async def test_a_background_call_and_a_quick_one_in_one_response_share_one_follow_up(server, assistant):
    assistant.rules = {r"混ぜて": lambda m: [call("background"), call("quick")]}
    async with answered(server, "混ぜて調べて", []) as conversation:
        record = server.connections[0]
        # The message's response; one telling "started" and the quick result together; one for the background result.
        assert len(record.of_type("response.create")) == 3
        assert record.sent_of_type("error") == []
        follow_up = record.sent_of_type("response.done")[1]["response"]["output"]
        said = [part["text"] for item in follow_up for part in item["content"]]
        assert len(said) == 2 and '"started"' in said[0] and '"quick"' in said[1]  # one response tells both
        told = assistant_said(conversation)
        assert told == [*said, told[-1]] and '"background"' in told[-1]
