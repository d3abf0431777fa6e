"""The conversation record (conversation/export.py) as a readable Japanese document, and the page's usage line.

Only words and layout live here: every figure comes from the record or the usage summary as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from conversation.transcript import Message
from web.chat import message_text
from web.labels import call_summary_label

ROLE_LABELS = {"user": "ユーザー", "assistant": "アシスタント"}
KIND_LABELS = {"voice": "音声（話し終わり → 最初の音声）", "typed": "テキスト（送信 → 最初の文字）"}
AWAITING_TRANSCRIPT = "（文字起こし待ち）"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} 秒"


def _clock(iso: str | None) -> str:
    return iso[11:19] if iso else "—"


def _transcript_lines(record: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    lines = ["## 会話", ""]
    for entry in record["transcript"]:
        if entry["type"] == "message":
            message = Message(entry["role"], entry["text"], entry["pending"], entry["interrupted"],
                              entry.get("unheard", False))
            text = message_text(message, pending=AWAITING_TRANSCRIPT)
            lines.append(f"**{ROLE_LABELS[entry['role']]}:** {text}".replace("\n", "  \n"))
        else:
            status = labels.get(entry.get("status", ""), entry.get("status", ""))
            arguments = json.dumps(entry["arguments"], ensure_ascii=False)
            result = f" → {status}" if status else ""
            if summary := call_summary_label(entry.get("summary", ""), entry.get("cancel_reason")):
                result += f": {summary}"
            lines.append(f"> 🔧 `{entry['name']}` {arguments}{result}")
        lines.append("")
    if not record["transcript"]:
        lines += ["（まだ会話はありません）", ""]
    return lines


def _calls_lines(record: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    if not record["tool_calls"]:
        return []
    rows = [[_clock(c["started_at"]), c["name"], c["arguments"], labels.get(c["status"], c["status"]),
             _seconds(c["seconds"]), call_summary_label(c["summary"], c.get("cancel_reason"))]
            for c in record["tool_calls"]]
    lines = ["## ツールの実行", "", *_table(["開始時刻", "ツール", "引数", "状態", "所要時間", "結果"], rows)]
    lines += ["", "### ツールの結果", ""]
    for c in record["tool_calls"]:
        lines += [f"- `{c['name']}`（{c['call_id']}）", "", "  ```json",
                  *("  " + line for line in json.dumps(c["result"], ensure_ascii=False, indent=2).splitlines()),
                  "  ```", ""]
    return lines


def cost_text(usage: Mapping[str, Any]) -> str:
    """The cost as a person should read it: an estimate, unknown, or not billed (offline)."""
    status, cost = usage.get("cost_status"), usage.get("totals", {}).get("cost_usd")
    if status == "not_billed":
        return "料金なし（オフラインモード）"
    if status != "estimated" or cost is None:
        return f"料金不明（モデル {usage.get('model') or '?'} の料金表がありません）"
    return f"${cost:.4f}（推定、料金表 {usage.get('prices_as_of') or '日付不明'} 時点）"


def _usage_lines(usage: Mapping[str, Any] | None) -> list[str]:
    if not usage:
        return []
    t = usage.get("totals", {})
    lines = ["## 使用量と料金", "", f"- 応答数: {t.get('responses', 0)}",
             f"- 入力トークン: {t.get('input_tokens', 0)}（うちキャッシュ {t.get('cached_tokens', 0)}、"
             f"テキスト {t.get('input_text_tokens', 0)}、音声 {t.get('input_audio_tokens', 0)}）",
             f"- 出力トークン: {t.get('output_tokens', 0)}（テキスト {t.get('output_text_tokens', 0)}、"
             f"音声 {t.get('output_audio_tokens', 0)}）",
             f"- 料金: {cost_text(usage)}", ""]
    rows = [[r["response_id"], r["input_tokens"], r["cached_tokens"], r["output_tokens"],
             "—" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}"] for r in usage.get("responses", [])]
    if rows:
        lines += ["### 応答ごと", ""]
        lines += [*_table(["応答 ID", "入力", "うちキャッシュ", "出力", "料金（推定）"], rows), ""]
    return lines


def _latency_lines(usage: Mapping[str, Any] | None) -> list[str]:
    latency = (usage or {}).get("latency")
    if not latency:
        return []
    lines = ["## 応答時間（中央値）", ""]
    for kind, label in KIND_LABELS.items():
        lines.append(f"- {label}: {_seconds(latency.get(f'{kind}_median_seconds'))}"
                     f"（{latency.get(f'{kind}_turns', 0)} 回）")
    for name, tool in latency.get("tools", {}).items():
        lines.append(f"- ツール `{name}` の所要時間: {_seconds(tool['median_seconds'])}（{tool['calls']} 回）")
    return [*lines, ""]


def to_markdown(record: Mapping[str, Any], status_labels: Mapping[str, str] | None = None) -> str:
    """A readable document with Japanese headings; `status_labels` maps call statuses to what the page shows."""
    labels = status_labels or {}
    lines = ["# 会話の記録", "", f"- 書き出し日時: {record.get('exported_at') or '—'}"]
    if record.get("connection"):
        lines.append(f"- 接続先: {record['connection']}")
    lines.append("")
    lines += _transcript_lines(record, labels)
    lines += _calls_lines(record, labels)
    lines += _usage_lines(record.get("usage"))
    lines += _latency_lines(record.get("usage"))
    return "\n".join(lines).rstrip() + "\n"


def usage_line(usage: Mapping[str, Any]) -> str:
    """One compact line for the page: tokens, cost, and latency medians."""
    t, latency = usage.get("totals", {}), usage.get("latency", {})
    status = usage.get("cost_status")
    cost = t.get("cost_usd")
    if status == "not_billed":
        price = "料金なし（オフライン）"
    elif status == "estimated" and cost is not None:
        price = f"約 ${cost:.4f}（推定）"
    else:
        price = "料金不明"
    medians = [f"{name} {value:.2f} 秒" for name, key in (("音声", "voice"), ("テキスト", "typed"), ("ツール", "tool"))
               if (value := latency.get(f"{key}_median_seconds")) is not None]
    timing = "・".join(medians) if medians else "—"
    return (f"**使用量:** 応答 {t.get('responses', 0)} 回・入力 {t.get('input_tokens', 0):,} トークン"
            f"（キャッシュ {t.get('cached_tokens', 0):,}）・出力 {t.get('output_tokens', 0):,} トークン ｜ "
            f"**料金:** {price} ｜ **応答時間（中央値）:** {timing}")
