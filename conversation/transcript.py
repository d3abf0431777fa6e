"""The conversation as items in service order: what the chat shows and what a reconnect replays.

Transcripts of the user's speech arrive late (often after the assistant has started), so
entries are placed when their item is added and filled in when the text comes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from realtime.dialect import (
    Event,
    assistant_text_item,
    content_text,
    function_call_item,
    function_output_item,
    user_text_item,
)
from settings import Dialect
from speech_text import is_hallucination

ItemKind = Literal["message", "function_call"]

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
    streaming: bool = False  # an answer still arriving (a drop can cut it short)
    # An assistant message's `phase` (gpt-realtime-2): "commentary" for a preamble said before a tool
    # call, "final_answer" for the answer. Both are speech the user heard: shown, counted and replayed alike.
    phase: str = ""


class Transcript:
    def __init__(self) -> None:
        self.items: list[Item] = []
        self._by_id: dict[str, Item] = {}
        self._silent: set[str] = set()  # the silence an idle timeout committed: not something the user said

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

    def silence(self, item_id: str) -> None:
        """The service will commit this item for an idle timeout: keep it out of the chat and the replay."""
        self._silent.add(item_id)
        self.remove(item_id)

    def item_added(self, raw: Event, previous_item_id: str | None) -> bool:
        """A conversation item the service added (a voice turn, an answer, a call); True if the chat changed."""
        item_id, kind = raw.get("id", ""), raw.get("type")
        if item_id in self._silent:
            return False
        if kind == "message" and raw.get("role") in ("user", "assistant"):
            content = raw.get("content") or []
            voice = any(part.get("type") == "input_audio" for part in content if isinstance(part, dict))
            text = content_text(content)
            self.add(Item(item_id, "message", raw["role"], text, pending=voice and not text,
                          phase=raw.get("phase") or ""), previous_item_id)
            return True
        if kind == "function_call":
            self.add(Item(item_id, "function_call", call_id=raw.get("call_id", ""), name=raw.get("name", ""),
                          arguments=raw.get("arguments", "")), previous_item_id)
        return False

    def heard(self, item_id: str, text: str) -> bool:
        """The transcript of a voice turn arrived (a silence hallucination removes the turn instead)."""
        item = self.get(item_id)
        if item is None:
            return False
        if is_hallucination(text):
            self.remove(item_id)
        else:
            item.text, item.pending = text.strip(), False
        return True

    def not_heard(self, item_id: str) -> bool:
        item = self.get(item_id)
        if item is not None:
            item.text, item.pending = "（音声を文字にできませんでした）", False
        return item is not None

    def answer_grew(self, item_id: str, delta: str) -> bool:
        item = self.get(item_id)
        if item is not None:
            item.text += delta
        return item is not None

    def answer_done(self, raw: Event) -> None:
        """The service's final text of an answer wins over the deltas, unless the user cut it short."""
        item = self.get(raw.get("id", ""))
        final = content_text(raw.get("content") or [])
        if item is not None:
            item.streaming = False
        if item is not None and final and not item.interrupted:
            item.text = final

    def unfinished(self, item_ids: list[str], call_ran: Callable[[str], bool]) -> list[str]:
        """Those of these output items that a drop cut short: answers still arriving, calls that never ran."""
        return [i for i in item_ids if (item := self.get(i)) is None or item.streaming
                or (item.kind == "function_call" and not call_ran(item.call_id))]

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
            elif item.text and item.role == "assistant":  # a preamble too; its `phase` is not sent back, as
                # the SDK's realtime assistant item (realtime_conversation_item_assistant_message_param.py) has none
                events.append({"id": item.item_id, **assistant_text_item(item.text, dialect)})
        return events
