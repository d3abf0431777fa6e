"""The domain's typed notices and messages, put into words by web/: every value has Japanese, nothing leaks."""

from __future__ import annotations

import json
import re

from conversation.export import conversation_record, to_json
from conversation.notices import Notice, NoticeKind
from conversation.tool_runner import CancelReason, ToolCall, ToolRunner
from conversation.transcript import Item, Transcript
from realtime.connection import ConnectFailure
from tools import default_toolbox
from web.api import tool_rows
from web.chat import chatbot_messages
from web.export import to_markdown
from web.labels import CALL_STATUS_LABELS, notice_label

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def test_every_notice_and_connect_failure_is_said_in_japanese():
    for kind in NoticeKind:
        text = notice_label(Notice(kind, "理由", ("AZURE_OPENAI_API_KEY",)))
        assert JAPANESE.search(text) and kind.value not in text, kind
    for failure in ConnectFailure:
        text = notice_label(Notice(NoticeKind.CONNECT_FAILED, "401", failure=failure))
        assert JAPANESE.search(text) and failure.value not in text, failure
    assert notice_label(None) == ""


def test_a_notice_says_its_details():
    assert "AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY を .env" in notice_label(
        Notice(NoticeKind.NOT_CONFIGURED, names=("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY")))
    assert "（HTTP 429）" in notice_label(Notice(NoticeKind.CONNECT_FAILED, "429", failure=ConnectFailure.RATE_LIMITED))
    assert notice_label(Notice(NoticeKind.SERVICE_ERROR, "{x} bad")) == "サービスからのエラー: {x} bad"


def test_speech_that_was_not_heard_is_said_so_on_the_page_in_the_export_and_to_the_model():
    transcript = Transcript()
    transcript.add(Item("u1", "message", "user", pending=True))
    transcript.add(Item("a1", "message", "assistant", "聞き取れませんでした。もう一度どうぞ。", interrupted=True))
    assert transcript.not_heard("u1")
    assert [m["content"] for m in chatbot_messages(transcript.messages())] == [
        "（音声を文字にできませんでした）", "聞き取れませんでした。もう一度どうぞ。 …（中断）"]
    unheard = transcript.messages()[0]
    assert unheard.unheard and unheard.text == ""  # the domain keeps a flag, not words
    record = conversation_record(transcript.items, [], None)
    assert json.loads(to_json(record))["transcript"][0]["unheard"] is True
    assert "**ユーザー:** （音声を文字にできませんでした）" in to_markdown(record)
    replayed = json.dumps(transcript.replay("ga", 10), ensure_ascii=False)
    assert "（音声を文字にできませんでした）" in replayed


def test_a_call_cancelled_unasked_says_why_in_the_table_and_the_export():
    async def ended(_call: ToolCall) -> None: ...

    call = ToolRunner(default_toolbox(), lambda _call: None, ended).skip("call_1", "get_weather", "{}")
    assert call.summary == "" and call.cancel_reason == CancelReason.RESPONSE_INTERRUPTED
    why = "応答が中断されたため実行しませんでした"
    assert tool_rows([call])[0][5] == why
    item = Item("fc_1", "function_call", call_id="call_1", name="get_weather", arguments="{}")
    record = conversation_record([item], [call], None)
    assert record["tool_calls"][0]["cancel_reason"] == "response_interrupted"
    markdown = to_markdown(record, CALL_STATUS_LABELS)
    assert f"→ キャンセル: {why}" in markdown and f"| {why} |" in markdown
