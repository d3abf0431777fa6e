"""A conversation to take away: transcript with tool calls and results, usage and timings, as plain values.

`conversation_record` gathers them once; `to_json` and web/export.py's `to_markdown` only render them, so
the two downloads always say the same thing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from conversation.tool_runner import ToolCall
from conversation.transcript import Item

FORMAT = "realtime-voice-assistant/conversation-v1"
ROLES = ("user", "assistant")  # the messages exported (the instructions are not)


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


def _decoded(text: str | None) -> Any:
    """Arguments and results are JSON strings on the wire; keep them as JSON values when they parse."""
    if text is None or text == "":
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _call(call: ToolCall) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "name": call.name,
        "arguments": _decoded(call.arguments),
        "status": str(call.status),
        "started_at": _iso(call.started_at),
        "finished_at": _iso(call.finished_at),
        "seconds": round(call.elapsed(), 3) if call.finished_at else None,
        "summary": call.summary,
        "result": _decoded(call.output) if call.finished_at else None,
    } | ({"cancel_reason": str(call.cancel_reason)} if call.cancel_reason else {})  # only then: others as before


def _entry(item: Item, calls: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
    if item.kind == "function_call":
        entry = {"type": "function_call", "item_id": item.item_id, "call_id": item.call_id, "name": item.name,
                 "arguments": _decoded(item.arguments), "output": _decoded(item.output)}
        if known := calls.get(item.call_id):
            entry.update(status=known["status"], seconds=known["seconds"], summary=known["summary"])
            if "cancel_reason" in known:
                entry["cancel_reason"] = known["cancel_reason"]
        return entry
    if item.role not in ROLES:
        return None
    entry = {"type": "message", "item_id": item.item_id, "role": item.role, "text": item.text,
             "pending": item.pending, "interrupted": item.interrupted}
    if item.unheard:  # only then: every other export stays as it was before the flag existed
        entry["unheard"] = True
    return entry


def conversation_record(items: Iterable[Item], calls: Iterable[ToolCall], usage: Mapping[str, Any] | None,
                        connection: str = "", now: float | None = None) -> dict[str, Any]:
    """Everything the downloads show, as JSON-ready values."""
    tool_calls = [_call(c) for c in sorted(calls, key=lambda c: c.started_at)]
    by_id = {c["call_id"]: c for c in tool_calls}
    transcript = [entry for item in items if (entry := _entry(item, by_id))]
    return {
        "format": FORMAT,
        "exported_at": _iso(time.time() if now is None else now),
        "connection": connection,
        "transcript": transcript,
        "tool_calls": tool_calls,
        "usage": dict(usage) if usage else None,
    }


def to_json(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, indent=2)
