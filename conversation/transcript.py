"""The conversation as items in service order: what the chat shows and what a reconnect replays.

Transcripts of the user's speech arrive late (often after the assistant has started), so
entries are placed when their item is added and filled in when the text comes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from realtime.dialect import (
    Event,
    assistant_text_item,
    function_call_item,
    function_output_item,
    user_text_item,
)
from settings import Dialect

ItemKind = Literal["message", "function_call"]

# Whisper-family models "hear" these on silence or noise; never show them as something the user said.
_HALLUCINATIONS = (
    "ご視聴ありがとうございました",
    "ご視聴ありがとうございます",
    "チャンネル登録よろしくお願いします",
    "チャンネル登録お願いします",
    "最後までご視聴いただきありがとうございます",
    "thankyouforwatching",
    "thanksforwatching",
)
_PUNCTUATION = re.compile(r"[\s、。,.!?！？「」『』…・ー〜~]+")


def is_hallucination(text: str) -> bool:
    normalized = _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text)).lower()
    return not normalized or any(normalized == h.lower() or (h in normalized and len(normalized) <= len(h) + 4)
                                 for h in _HALLUCINATIONS)


@dataclass
class Item:
    item_id: str
    kind: ItemKind
    role: str = ""
    text: str = ""
    pending: bool = False  # a voice turn whose transcript has not arrived yet
    interrupted: bool = False
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    output: str | None = None
    sent: bool = True  # on the service's side (a typed message waits for its turn to be sent)


class Transcript:
    def __init__(self) -> None:
        self.items: list[Item] = []
        self._by_id: dict[str, Item] = {}

    def get(self, item_id: str) -> Item | None:
        return self._by_id.get(item_id)

    def add(self, item: Item, previous_item_id: str | None = None) -> Item:
        """Insert after `previous_item_id` when known (service order), else at the end; ids are unique."""
        if item.item_id in self._by_id:
            return self._by_id[item.item_id]
        position = len(self.items)
        if previous_item_id and previous_item_id in self._by_id:
            position = self.items.index(self._by_id[previous_item_id]) + 1
        self.items.insert(position, item)
        self._by_id[item.item_id] = item
        return item

    def remove(self, item_id: str) -> None:
        item = self._by_id.pop(item_id, None)
        if item is not None:
            self.items.remove(item)

    def move_to_end(self, item_id: str) -> None:
        item = self._by_id.get(item_id)
        if item is not None:
            self.items.remove(item)
            self.items.append(item)

    def call(self, call_id: str) -> Item | None:
        return next((i for i in self.items if i.kind == "function_call" and i.call_id == call_id), None)

    def messages(self) -> list[dict[str, str]]:
        """The chat as `gr.Chatbot(type="messages")` wants it."""
        shown = []
        for item in self.items:
            if item.kind != "message" or item.role not in ("user", "assistant"):
                continue
            text = "🎤 …" if item.pending else item.text
            if item.interrupted:
                text += " …（中断）"
            if text:
                shown.append({"role": item.role, "content": text})
        return shown

    def replay(self, dialect: Dialect, max_items: int) -> list[Event]:
        """The latest `max_items` items, to recreate in a fresh service session so the model keeps its
        context (bounded: every later response re-bills all of it)."""
        events: list[Event] = []
        for item in [i for i in self.items if i.sent][-max_items:]:
            if item.kind == "function_call":
                events.append({"id": item.item_id, **function_call_item(item.call_id, item.name, item.arguments)})
                if item.output is not None:
                    events.append(function_output_item(item.call_id, item.output))
            elif item.text and item.role == "user":
                events.append({"id": item.item_id, **user_text_item(item.text)})
            elif item.text and item.role == "assistant":
                events.append({"id": item.item_id, **assistant_text_item(item.text, dialect)})
        return events
