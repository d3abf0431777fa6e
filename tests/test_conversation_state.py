"""The pieces of conversation state on their own: transcript order and the tool table."""

from __future__ import annotations

import pytest

from conversation.tool_runner import CallStatus, ToolCall
from conversation.transcript import Item, Transcript
from speech_text import is_hallucination
from web.api import tool_rows, validate_message
from web.chat import chatbot_messages


def test_late_user_transcript_stays_before_the_answer():
    transcript = Transcript()
    transcript.add(Item("u1", "message", "user", pending=True))
    transcript.add(Item("a1", "message", "assistant", "はい、晴れです。"), previous_item_id="u1")
    assert chatbot_messages(transcript.messages())[0]["content"] == "🎤 …"
    user = transcript.get("u1")
    user.text, user.pending = "東京の天気は？", False
    assert [m["content"] for m in chatbot_messages(transcript.messages())] == ["東京の天気は？", "はい、晴れです。"]


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
    ga = transcript.replay("ga", 100)
    assert [e["type"] for e in ga] == ["message", "message", "function_call", "function_call_output"]
    assert ga[1]["content"][0]["type"] == "output_text"
    assert transcript.replay("preview", 100)[1]["content"][0]["type"] == "text"
    assert ga[0]["id"] == "u1" and ga[3]["call_id"] == "c1"
    assert [e.get("id") for e in transcript.replay("ga", 2)] == ["a1", "f1", None]  # the newest, call and output kept


def test_a_typed_message_is_not_replayed_before_it_is_sent_then_takes_its_place_in_order():
    transcript = Transcript()
    transcript.add(Item("u1", "message", "user", "一つ目"))
    transcript.add(Item("u2", "message", "user", "二つ目", sent=False))
    transcript.add(Item("a1", "message", "assistant", "一つ目への答え"), previous_item_id="u1")
    assert [e["id"] for e in transcript.replay("ga", 100)] == ["u1", "a1"]
    transcript.get("u2").sent = True
    transcript.move_to_end("u2")
    assert [m["content"] for m in chatbot_messages(transcript.messages())] == ["一つ目", "一つ目への答え", "二つ目"]


def test_tool_rows_as_the_user_sees_them():
    running = ToolCall("c1", "search_database", '{"query": "機械学習について詳しく知りたいです、よろしく"}',
                       started_at=1000.0)
    done = ToolCall("c2", "get_weather", '{"location": "東京"}', status=CallStatus.FAILED, started_at=990.0,
                    finished_at=991.5, summary="天気サービスに接続できませんでした")
    rows = tool_rows([running, done], now=1003.25)
    query = '{"query": "機械学習について詳しく知りたいです、よろしく"}'
    assert rows[0][1:] == ["search_database", query, "実行中", "3.2", ""]
    assert rows[1][1:] == ["get_weather", '{"location": "東京"}', "失敗", "1.5", "天気サービスに接続できませんでした"]
    assert tool_rows([running], now=1005.0)[0][4] == "5.0"  # ticking while it runs
    long = ToolCall("c3", "x", '{"q": "' + "あ" * 60 + '"}', started_at=1000.0)
    assert len(tool_rows([long], now=1000.0)[0][2]) == 40


def test_every_call_status_and_connection_state_has_a_japanese_label():
    from conversation.conversation import ConnectionState
    from web.labels import CALL_STATUS_LABELS, CONNECTION_LABELS, call_status_label, connection_label

    assert set(CALL_STATUS_LABELS) == {s.value for s in CallStatus}
    assert set(CONNECTION_LABELS) == {s.value for s in ConnectionState}
    assert call_status_label(CallStatus.TIMEOUT) == "タイムアウト"
    assert connection_label(ConnectionState.RECONNECTING) == "再接続中…"


@pytest.mark.parametrize(("message", "problem"), [("", "空"), ("   ", "空"), (None, "文字列"), (123, "文字列"),
                                                  ("あ" * 2001, "長すぎます"), ("こんにちは", None)])
def test_messages_are_validated_with_clear_japanese(message, problem):
    result = validate_message(message)
    assert (result is None) if problem is None else (problem in result)
