"""The pieces of conversation state on their own: transcript order, the response gate, the tool table."""

from __future__ import annotations

import asyncio

import pytest

from conversation.gate import ResponseGate
from conversation.tool_runner import ToolCall
from conversation.transcript import Item, Transcript, is_hallucination
from web.page import tool_rows, validate_message


def test_late_user_transcript_stays_before_the_answer():
    transcript = Transcript()
    transcript.add(Item("u1", "message", "user", pending=True))
    transcript.add(Item("a1", "message", "assistant", "はい、晴れです。"), previous_item_id="u1")
    assert transcript.messages()[0]["content"] == "🎤 …"
    user = transcript.get("u1")
    user.text, user.pending = "東京の天気は？", False
    assert [m["content"] for m in transcript.messages()] == ["東京の天気は？", "はい、晴れです。"]


def test_items_are_placed_after_their_previous_item():
    transcript = Transcript()
    transcript.add(Item("a", "message", "user", "一"))
    transcript.add(Item("c", "message", "user", "三"), previous_item_id="a")
    transcript.add(Item("b", "message", "assistant", "二"), previous_item_id="a")
    assert [i.item_id for i in transcript.items] == ["a", "b", "c"]
    transcript.add(Item("b", "message", "assistant", "重複"))  # a repeated id is not added twice
    assert len(transcript.items) == 3


@pytest.mark.parametrize("text", ["ご視聴ありがとうございました", "ご視聴ありがとうございました。", " ", "",
                                  "Thank you for watching!", "チャンネル登録よろしくお願いします"])
def test_silence_hallucinations_are_recognised(text):
    assert is_hallucination(text)


@pytest.mark.parametrize("text", [
    "ありがとうございました",
    "動画のご視聴ありがとうございましたと言っていましたが、その後どうなりましたか",
    "東京の天気は？",
])
def test_real_speech_is_kept(text):
    assert not is_hallucination(text)


def test_replay_recreates_text_and_calls_in_each_dialect():
    transcript = Transcript()
    transcript.add(Item("u1", "message", "user", "こんにちは"))
    transcript.add(Item("a1", "message", "assistant", "どうも"))
    transcript.add(Item("f1", "function_call", call_id="c1", name="get_weather", arguments="{}", output='{"ok":1}'))
    ga = transcript.replay("ga")
    assert [e["type"] for e in ga] == ["message", "message", "function_call", "function_call_output"]
    assert ga[1]["content"][0]["type"] == "output_text"
    assert transcript.replay("preview")[1]["content"][0]["type"] == "text"
    assert ga[0]["id"] == "u1" and ga[3]["call_id"] == "c1"


class Wire:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def __call__(self, event: dict) -> None:
        self.sent.append(event)


@pytest.fixture
async def gate():
    """A connected ResponseGate running over a recording wire."""
    wire = Wire()
    gate = ResponseGate(wire)
    gate.wire = wire  # type: ignore[attr-defined]
    runner = asyncio.create_task(gate.run())
    gate.connected()
    yield gate
    runner.cancel()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_gate_sends_one_request_at_a_time_and_coalesces_the_rest(gate):
    gate.request({"t1"})
    await settle()
    gate.request({"t2"})
    gate.request({"t3"}, tools_allowed=False)
    await settle()
    assert len(gate.wire.sent) == 1
    first = gate.wire.sent[0]["response"]["metadata"]["request_id"]
    assert gate.on_response_created("r1", {"request_id": first}) == {"t1"}
    gate.on_response_done("r1")
    await settle()
    assert len(gate.wire.sent) == 2 and "tool_choice" not in gate.wire.sent[1]["response"]  # one allowed tools
    second = gate.wire.sent[1]["response"]["metadata"]["request_id"]
    assert gate.on_response_created("r2", {"request_id": second}) == {"t2", "t3"}


async def test_gate_waits_while_the_user_speaks_and_for_the_services_own_response(gate):
    gate.on_speech_started()
    gate.request({"t1"})
    await settle()
    assert gate.wire.sent == []
    gate.on_speech_stopped()
    await settle()
    assert gate.wire.sent == []  # the service gets a moment to start its own answer to the voice turn
    gate.on_response_created("vad", None)
    assert gate.causes_of["vad"] == set()
    await asyncio.sleep(0.6)
    assert gate.wire.sent == []  # not while that answer is active
    gate.on_response_done("vad")
    await settle()
    assert len(gate.wire.sent) == 1


async def test_gate_recovers_from_a_collision_without_losing_the_request(gate):
    gate.request({"t1"})
    await settle()
    gate.on_active_response_error()  # a response we had not seen yet was active
    gate.on_response_created("other", None)
    await settle()
    assert len(gate.wire.sent) == 1
    gate.on_response_done("other")
    await settle()
    assert len(gate.wire.sent) == 2
    retry = gate.wire.sent[1]["response"]["metadata"]["request_id"]
    assert gate.on_response_created("r2", {"request_id": retry}) == {"t1"}


def test_tool_rows_as_the_user_sees_them():
    running = ToolCall("c1", "search_database", '{"query": "機械学習について詳しく知りたいです、よろしく"}',
                       started_at=1000.0)
    done = ToolCall("c2", "get_weather", '{"location": "東京"}', status="失敗", started_at=990.0, finished_at=991.5,
                    summary="天気サービスに接続できませんでした")
    rows = tool_rows([running, done], now=1003.25)
    query = '{"query": "機械学習について詳しく知りたいです、よろしく"}'
    assert rows[0][1:] == ["search_database", query, "実行中", "3.2", ""]
    assert rows[1][1:] == ["get_weather", '{"location": "東京"}', "失敗", "1.5", "天気サービスに接続できませんでした"]
    assert tool_rows([running], now=1005.0)[0][4] == "5.0"  # ticking while it runs
    long = ToolCall("c3", "x", '{"q": "' + "あ" * 60 + '"}', started_at=1000.0)
    assert len(tool_rows([long], now=1000.0)[0][2]) == 40


@pytest.mark.parametrize(("message", "problem"), [("", "空"), ("   ", "空"), (None, "文字列"), (123, "文字列"),
                                                  ("あ" * 2001, "長すぎます"), ("こんにちは", None)])
def test_messages_are_validated_with_clear_japanese(message, problem):
    result = validate_message(message)
    assert (result is None) if problem is None else (problem in result)
