"""Export: the transcript with tool calls and their results, usage and timings, as JSON and as Markdown."""

from __future__ import annotations

import json

from conversation.export import conversation_record, to_json
from conversation.prices import Prices, PriceTable
from conversation.tool_runner import ToolCall
from conversation.transcript import Item
from conversation.usage import TurnKind, UsageMeter
from web.export import to_markdown, usage_line

USAGE = {"input_tokens": 1200, "output_tokens": 80, "total_tokens": 1280,
         "input_token_details": {"text_tokens": 1200, "audio_tokens": 0, "cached_tokens": 1024},
         "output_token_details": {"text_tokens": 20, "audio_tokens": 60}}
LABELS = {"done": "完了", "完了": "完了", "failed": "失敗", "失敗": "失敗"}


def conversation() -> tuple[list[Item], list[ToolCall], dict]:
    items = [
        Item("msg_1", "message", "user", "東京の天気は？"),
        Item("fc_1", "function_call", call_id="call_1", name="get_weather", arguments='{"city": "東京"}',
             output='{"status": "completed", "result": {"place": "東京", "weather": "晴れ"}}'),
        Item("msg_2", "message", "assistant", "東京は晴れです。| 最高 20℃", interrupted=True),
        Item("msg_3", "message", "user", "", pending=True),
        Item("sys_1", "message", "system", "instructions are not part of the export"),
    ]
    weather = ToolCall("call_1", "get_weather", '{"city": "東京"}', started_at=1_700_000_000.0)
    weather.status, weather.finished_at = LABELS["done"], 1_700_000_001.25  # whichever vocabulary the runner uses
    weather.summary = "東京 晴れ"
    weather.output = '{"status": "completed", "result": {"place": "東京", "weather": "晴れ"}}'
    meter = UsageMeter("test-model", PriceTable({"test-model": Prices(1, 0.1, 10, 0.5, 2, 20)}, as_of="2026-11-25"))
    meter.on_response_done("resp_1", USAGE)
    meter.turn_started("turn_1", TurnKind.TYPED, at=5.0)
    meter.first_output("turn_1", at=5.6)
    return items, [weather], meter.summary([("get_weather", weather.elapsed())])


def test_json_has_transcript_tool_results_usage_and_timings() -> None:
    items, calls, usage = conversation()
    record = json.loads(to_json(conversation_record(items, calls, usage, connection="OpenAI (test-model)")))
    assert [e.get("role", e["type"]) for e in record["transcript"]] == ["user", "function_call", "assistant", "user"]
    call = record["transcript"][1]
    assert call["arguments"] == {"city": "東京"}
    assert call["output"]["result"]["weather"] == "晴れ"
    assert call["seconds"] == 1.25
    assert record["transcript"][2]["interrupted"] is True and record["transcript"][3]["pending"] is True
    assert record["tool_calls"][0]["result"] == {"status": "completed", "result": {"place": "東京", "weather": "晴れ"}}
    assert record["tool_calls"][0]["started_at"].startswith("2023-11-1")
    assert record["usage"]["totals"]["input_tokens"] == 1200
    assert record["usage"]["totals"]["cached_tokens"] == 1024
    assert record["usage"]["latency"]["typed_median_seconds"] == 0.6
    assert record["connection"] == "OpenAI (test-model)"


def test_markdown_reads_as_a_japanese_document() -> None:
    items, calls, usage = conversation()
    markdown = to_markdown(conversation_record(items, calls, usage), status_labels=LABELS)
    for heading in ("# 会話の記録", "## 会話", "## ツールの実行", "## 使用量と料金", "## 応答時間（中央値）"):
        assert f"\n{heading}\n" in f"\n{markdown}", heading
    assert "**ユーザー:** 東京の天気は？" in markdown
    assert "**アシスタント:** 東京は晴れです。| 最高 20℃ …（中断）" in markdown
    assert '> 🔧 `get_weather` {"city": "東京"} → 完了: 東京 晴れ' in markdown
    assert "最高 20℃ \\|" not in markdown and "東京 晴れ |" in markdown  # table cells escape pipes, prose does not
    assert "入力トークン: 1200（うちキャッシュ 1024" in markdown
    assert "$0." in markdown and "推定、料金表 2026-11-25 時点" in markdown
    assert "テキスト（送信 → 最初の文字）: 0.60 秒（1 回）" in markdown
    assert "instructions are not part" not in markdown


def test_unknown_and_offline_costs_are_said_plainly() -> None:
    items, calls, _ = conversation()
    unknown = UsageMeter("voice-prod", PriceTable({}))
    unknown.on_response_done("resp_1", USAGE)
    assert "料金不明（モデル voice-prod の料金表がありません）" in to_markdown(
        conversation_record(items, calls, unknown.summary()))
    offline = UsageMeter("offline-assistant", billed=False)
    assert "料金なし（オフラインモード）" in to_markdown(conversation_record(items, calls, offline.summary()))


def test_empty_conversation_exports_without_errors() -> None:
    record = conversation_record([], [], None)
    assert json.loads(to_json(record))["transcript"] == []
    markdown = to_markdown(record)
    assert "（まだ会話はありません）" in markdown and "## 使用量と料金" not in markdown


def test_running_call_has_no_result_yet() -> None:
    running = ToolCall("call_2", "search_database", "not json")
    record = conversation_record([], [running], None)
    assert record["tool_calls"][0]["result"] is None and record["tool_calls"][0]["seconds"] is None
    assert record["tool_calls"][0]["arguments"] == "not json"


def test_usage_line_is_compact_and_says_what_is_known() -> None:
    _, _, usage = conversation()
    line = usage_line(usage)
    assert "入力 1,200 トークン（キャッシュ 1,024）" in line and "出力 80 トークン" in line
    assert "約 $0.0015（推定）" in line and "テキスト 0.60 秒" in line and "ツール 1.25 秒" in line
    assert "音声" not in line.split("応答時間")[1]  # no voice turn yet: no made-up figure
    assert "料金なし（オフライン）" in usage_line(UsageMeter("offline-assistant", billed=False).summary())
    assert "料金不明" in usage_line(UsageMeter("voice-prod", PriceTable({})).summary())
    assert "\n" not in line
