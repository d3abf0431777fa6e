"""The conversation as items in service order: what the chat shows and what a reconnect replays.

Transcripts of the user's speech arrive late (often after the assistant has started), so
entries are placed when their item is added and filled in when the text comes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from realtime.dialect import Event, assistant_text_item, function_call_item, function_output_item, user_text_item
from realtime.events import ServerItem
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
    unheard: bool = False  # a voice turn the service could not transcribe


@dataclass(frozen=True)
class Message:
    """A user's or the assistant's message as it stands now (a copy: items keep changing); web/ shows it."""

    role: str
    text: str
    pending: bool = False
    interrupted: bool = False
    unheard: bool = False


# What a fresh service session reads in place of speech that could not be transcribed (the model's, not the UI's).
UNHEARD_FOR_MODEL = "（音声を文字にできませんでした）"


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

    def item_added(self, added: ServerItem, previous_item_id: str | None) -> bool:
        """A conversation item the service added (a voice turn, an answer, a call); True if the chat changed."""
        if added.id in self._silent:
            return False
        if added.type == "message" and added.role in ("user", "assistant"):
            self.add(Item(added.id, "message", added.role, added.text, pending=added.voice and not added.text,
                          phase=added.phase), previous_item_id)
            return True
        if added.type == "function_call":
            self.add(Item(added.id, "function_call", call_id=added.call_id, name=added.name,
                          arguments=added.arguments), previous_item_id)
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
            item.unheard, item.pending = True, False
        return item is not None

    def answer_grew(self, item_id: str, delta: str) -> bool:
        item = self.get(item_id)
        if item is not None:
            item.text += delta
        return item is not None

    def answer_done(self, done: ServerItem) -> None:
        """The service's final text of an answer wins over the deltas, unless the user cut it short."""
        item = self.get(done.id)
        if item is None:
            return
        item.streaming = False
        if done.text and not item.interrupted:
            item.text = done.text

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

    def messages(self) -> list[Message]:
        """The user's and the assistant's messages in order (what a chat shows)."""
        return [Message(i.role, i.text, i.pending, i.interrupted, i.unheard) for i in self.items
                if i.kind == "message" and i.role in ("user", "assistant")]

    def replay(self, dialect: Dialect, max_items: int) -> list[Event]:
        """The latest `max_items` items, to recreate in a fresh service session so the model keeps its
        context (bounded: every later response re-bills all of it)."""
        events: list[Event] = []
        for item in [i for i in self.items if i.sent][-max_items:]:
            if item.kind == "function_call":
                events.append({"id": item.item_id, **function_call_item(item.call_id, item.name, item.arguments)})
                if item.output is not None:
                    events.append(function_output_item(item.call_id, item.output))
            elif (item.text or item.unheard) and item.role == "user":
                events.append({"id": item.item_id, **user_text_item(item.text or UNHEARD_FOR_MODEL)})
            elif item.text and item.role == "assistant":  # a preamble too; its `phase` is not sent back, as
                # the SDK's realtime assistant item (realtime_conversation_item_assistant_message_param.py) has none
                events.append({"id": item.item_id, **assistant_text_item(item.text, dialect)})
        return events
