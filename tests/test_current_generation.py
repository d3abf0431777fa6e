"""The GA session's current features against the local server, over a real socket through the SDK:
the new session settings, spoken preambles (`phase`), parallel tool calls and the idle timeout."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from conftest import API_KEY, ScriptedAssistant, ToneVoice, call, eventually, settings_for
from openai.types.beta.realtime.session_update_event import Session as PreviewSession
from openai.types.realtime import RealtimeSessionCreateRequest
from openai.types.realtime.realtime_audio_config_input import RealtimeAudioConfigInput
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad, ServerVad

from audio import SAMPLE_RATE
from conversation.conversation import Conversation
from offline.engine import Say
from offline.server import RealtimeServer
from offline.speech import EnergyTurnDetector
from settings import VoiceSettings, load_settings
from tools import Toolbox, ToolRegistry

ALL_SET = {"REALTIME_TURN_DETECTION": "semantic_vad", "REALTIME_VAD_EAGERNESS": "low",
           "REALTIME_NOISE_REDUCTION": "far_field", "REALTIME_REASONING_EFFORT": "low"}


def voice_from(env: dict[str, str]) -> VoiceSettings:
    return load_settings(env).realtime.voice


async def first_session_update(server: RealtimeServer, flavour: str, voice: VoiceSettings) -> dict:
    conversation = Conversation(replace(settings_for(server, flavour), voice=voice))
    conversation.start()
    try:
        assert await conversation.wait_connected(5), conversation.notice
        record = server.connections[-1]
        await server.wait_for(lambda: record.sent_of_type("session.updated") or record.sent_of_type("error"))
        assert record.sent_of_type("error") == [], "the server refused the session.update"
        update = record.received[0]
        assert update["type"] == "session.update"
        return update["session"]
    finally:
        await conversation.close()


def ga_parts(session: dict) -> tuple[dict, dict]:
    """(audio.input, its turn_detection), after checking every key is one the SDK's types document."""
    RealtimeSessionCreateRequest.model_validate(session)  # each value is of its documented type
    assert set(session) <= set(RealtimeSessionCreateRequest.model_fields)
    audio_in = session["audio"]["input"]
    assert set(audio_in) <= set(RealtimeAudioConfigInput.model_fields)
    vad = audio_in["turn_detection"]
    assert set(vad) <= set((SemanticVad if vad["type"] == "semantic_vad" else ServerVad).model_fields)
    return audio_in, vad


# ---- settings → session.update ------------------------------------------------------------------------


async def test_unset_settings_send_none_of_the_new_fields(server):
    audio_in, vad = ga_parts(await first_session_update(server, "openai", voice_from({})))
    session = server.connections[0].received[0]["session"]
    assert "reasoning" not in session and "noise_reduction" not in audio_in
    assert vad["type"] == "server_vad" and "idle_timeout_ms" not in vad and "eagerness" not in vad


@pytest.mark.parametrize(("env", "where", "expected"), [
    ({"REALTIME_TURN_DETECTION": "semantic_vad"}, "turn_detection",
     {"type": "semantic_vad", "create_response": True, "interrupt_response": True}),
    ({"REALTIME_TURN_DETECTION": "semantic_vad", "REALTIME_VAD_EAGERNESS": "HIGH"}, "turn_detection",
     {"type": "semantic_vad", "eagerness": "high", "create_response": True, "interrupt_response": True}),
    ({"REALTIME_NOISE_REDUCTION": "near_field"}, "noise_reduction", {"type": "near_field"}),
    ({"REALTIME_NOISE_REDUCTION": "far_field"}, "noise_reduction", {"type": "far_field"}),
    ({"REALTIME_NOISE_REDUCTION": "off"}, "noise_reduction", None),  # documented: null turns it off
    ({"REALTIME_REASONING_EFFORT": "minimal"}, "reasoning", {"effort": "minimal"}),
    ({"REALTIME_IDLE_TIMEOUT_SECONDS": "8"}, "idle_timeout_ms", 8000),
])
async def test_each_setting_reaches_the_ga_session_update_as_documented(server, env, where, expected):
    session = await first_session_update(server, "azure-ga", voice_from(env))
    audio_in, vad = ga_parts(session)
    found = {"turn_detection": lambda: vad, "noise_reduction": lambda: audio_in["noise_reduction"],
             "reasoning": lambda: session["reasoning"], "idle_timeout_ms": lambda: vad["idle_timeout_ms"]}[where]()
    assert found == expected
    others = {"noise_reduction": "noise_reduction" in audio_in, "reasoning": "reasoning" in session,
              "idle_timeout_ms": "idle_timeout_ms" in vad, "turn_detection": vad["type"] == "semantic_vad"}
    assert [name for name, present in others.items() if present and name != where] == []
    if vad["type"] == "semantic_vad":  # semantic VAD takes none of server VAD's silence tuning
        assert not {"threshold", "silence_duration_ms", "prefix_padding_ms"} & set(vad)


async def test_the_preview_dialect_gets_only_what_it_supports(server):
    voice = voice_from({**ALL_SET, "REALTIME_TURN_DETECTION": "server_vad", "REALTIME_VAD_EAGERNESS": "",
                        "REALTIME_IDLE_TIMEOUT_SECONDS": "5"})
    session = await first_session_update(server, "azure-preview", voice)
    PreviewSession.model_validate(session)
    assert session["input_audio_noise_reduction"] == {"type": "far_field"}
    assert "reasoning" not in session and "idle_timeout_ms" not in session["turn_detection"]
    semantic = await first_session_update(server, "azure-preview", voice_from(ALL_SET))
    assert semantic["turn_detection"] == {"type": "semantic_vad", "eagerness": "low", "create_response": True,
                                          "interrupt_response": True}


@pytest.mark.parametrize(("name", "value", "field", "default"), [
    ("REALTIME_TURN_DETECTION", "semantic", "turn_detection", "server_vad"),
    ("REALTIME_NOISE_REDUCTION", "near", "noise_reduction", ""),
    ("REALTIME_REASONING_EFFORT", "max", "reasoning_effort", ""),
    ("REALTIME_IDLE_TIMEOUT_SECONDS", "soon", "idle_timeout_ms", 0),
])
def test_a_bad_value_is_one_warning_and_the_default(name, value, field, default, caplog):
    with caplog.at_level(logging.WARNING, logger="settings"):
        voice = voice_from({name: value})
    assert getattr(voice, field) == default
    assert len(caplog.records) == 1 and name in caplog.records[0].getMessage()


def test_eagerness_without_semantic_vad_and_idle_timeout_with_it_are_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="settings"):
        server_vad = voice_from({"REALTIME_VAD_EAGERNESS": "low"})
        semantic = voice_from({"REALTIME_TURN_DETECTION": "semantic_vad", "REALTIME_IDLE_TIMEOUT_SECONDS": "5"})
    assert server_vad.vad_eagerness == "" and semantic.idle_timeout_ms == 0
    assert len(caplog.records) == 2


def test_choosing_the_azure_preview_dialect_logs_once_that_it_was_retired(caplog):
    azure = {"AZURE_OPENAI_ENDPOINT": "https://example.invalid", "AZURE_OPENAI_API_KEY": "k",
             "AZURE_OPENAI_DEPLOYMENT": "d"}
    with caplog.at_level(logging.INFO, logger="settings"):
        preview = load_settings({**azure, "AZURE_OPENAI_API_VERSION": "2025-04-01-preview"})
    assert preview.realtime.dialect == "preview"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "2026-04-30" in line and "GA" in line
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="settings"):
        assert load_settings(azure).realtime.dialect == "ga"
    assert caplog.records == []


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
    server = RealtimeServer(lambda: assistant, PitchVoice, lambda: EnergyTurnDetector(threshold=500.0),
                            api_key=API_KEY, speed=8.0, record=True)
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
        answer = [m["content"] for m in conversation.snapshot().messages if m["role"] == "assistant"]
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


# ---- parallel tool calls -------------------------------------------------------------------------------


def parallel_tools(runs: list[tuple[str, float, float]]) -> Toolbox:
    """Two tools that take different times and note when each ran (name, start, end)."""
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

    return Toolbox.from_settings(load_settings({}), tools)


async def test_two_calls_in_one_response_run_at_once_and_are_followed_up_once(server, assistant):
    assistant.rules = {r"両方": lambda m: [call("quick"), call("slower")]}
    runs: list[tuple[str, float, float]] = []
    conversation = Conversation(settings_for(server, "openai"), tools=parallel_tools(runs))
    conversation.start()
    try:
        assert await conversation.wait_connected(5)
        turn = await conversation.send_text("両方調べて")
        await eventually(turn.done.is_set, 10)
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
        told = [m["content"] for m in conversation.snapshot().messages if m["role"] == "assistant"]
        assert len(told) == 2 and '"quick"' in told[0] and '"slower"' in told[1]  # one answer tells both
        assert all(c.output for c in conversation.tools.calls.values())
    finally:
        await conversation.close()


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
        await eventually(lambda: conversation.snapshot().messages == [
            {"role": "assistant", "content": "まだいらっしゃいますか？"}], 5)
        record = server.connections[0]
        (timeout,) = record.sent_of_type("input_audio_buffer.timeout_triggered")
        assert timeout["audio_end_ms"] - timeout["audio_start_ms"] >= 400
        await server.wait_for(lambda: record.sent_of_type("response.done"))
        assert record.of_type("response.create") == []  # the service answers a timeout itself
        assert conversation.notice == "" and record.sent_of_type("error") == []
        # Speaking once it has been heard is an ordinary turn.
        await eventually(lambda: not conversation.playback.busy, 5)
        server.next_transcript = "はい、います"
        for chunk in np.array_split(np.concatenate([ToneVoice.tone("あいうえお"), np.zeros(24000, np.int16)]), 10):
            await conversation.append_audio(chunk)
        await eventually(lambda: conversation.snapshot().messages[1:] == [
            {"role": "user", "content": "はい、います"}, {"role": "assistant", "content": "echo:はい、います"}], 5)
    finally:
        listener.cancel()
        await conversation.close()
