"""Turns: what one message set in motion, and the one place that says which turn a response,
an item or a tool call belongs to.

A turn is open until the response it asked for has started and ended, every tool call it
caused has ended, and each call's result has been told. Callers wait on `Turn.done`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Turn:
    turn_id: str
    message_id: str = ""  # the typed message that opened it, if any
    awaiting: bool = True  # a response was requested for it and has not started yet
    responses: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    item_ids: list[str] = field(default_factory=list)
    unanswered: bool = False  # the service never answered it (given up)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Turns:
    def __init__(self) -> None:
        self._turns: dict[str, Turn] = {}
        self._by_response: dict[str, set[str]] = {}
        self._items_of_response: dict[str, list[str]] = {}
        self._by_call: dict[str, set[str]] = {}

    def open(self) -> Turn:
        """A new turn (finished ones are forgotten here, so the table never grows)."""
        for finished in [t for t, turn in self._turns.items() if turn.done.is_set()]:
            del self._turns[finished]
        turn = Turn(f"turn_{uuid.uuid4().hex[:12]}")
        self._turns[turn.turn_id] = turn
        return turn

    def requested(self, turn_ids: Iterable[str]) -> None:
        """A response was asked for on behalf of these turns: they stay open until it is done."""
        for turn in self.each(turn_ids):
            turn.awaiting = True

    def response_started(self, response_id: str, turn_ids: Iterable[str], still_waiting: set[str]) -> None:
        """A response for these turns started; those in `still_waiting` have another request still to be answered
        (a tool's result asked for while this one was on its way), so they stay open for it too."""
        ids = set(turn_ids)
        self._by_response[response_id] = ids
        self._items_of_response[response_id] = []
        for turn in self.each(ids):
            turn.awaiting = turn.turn_id in still_waiting
            turn.responses.add(response_id)

    def item_added(self, response_id: str, item_id: str) -> None:
        """An output item of a response: it belongs to the turns that response answers."""
        self._items_of_response.setdefault(response_id, []).append(item_id)
        for turn in self.of_response(response_id):
            turn.item_ids.append(item_id)

    def of_response(self, response_id: str) -> list[Turn]:
        return list(self.each(self._by_response.get(response_id, ())))

    def call_started(self, call_id: str, response_id: str) -> set[str]:
        """A tool call of this response is running: its turns stay open until it ends (returns them)."""
        ids = self._by_call[call_id] = set(self._by_response.get(response_id, ()))
        for turn in self.each(ids):
            turn.calls.add(call_id)
        return ids

    def of_call(self, call_id: str) -> set[str]:
        return set(self._by_call.get(call_id, ()))

    def call_ended(self, call_id: str) -> None:
        for turn in self.each(self._by_call.pop(call_id, ())):
            turn.calls.discard(call_id)
            self._settle(turn)

    def response_done(self, response_id: str) -> None:
        self._items_of_response.pop(response_id, None)
        for turn in self.each(self._by_response.pop(response_id, ())):
            turn.responses.discard(response_id)
            self._settle(turn)

    def items_of(self, response_id: str) -> list[str]:
        return list(self._items_of_response.get(response_id, ()))

    def response_lost(self, response_id: str, answered: bool, cut: list[str]) -> set[str]:
        """A response died with its connection. If something of its answer stands (`answered`) its turns are
        settled with it; otherwise they forget what was `cut` short and are returned, still open, to be asked
        again after the reconnect (asked before settling: a turn must never end unanswered in between)."""
        again = set() if answered else set(self._by_response.get(response_id, ()))
        for turn in self.each(again):
            turn.item_ids = [i for i in turn.item_ids if i not in cut]
        self.requested(again)
        self.response_done(response_id)
        return again

    def given_up(self, turn_ids: Iterable[str]) -> None:
        for turn in self.each(turn_ids):
            turn.awaiting, turn.unanswered = False, True
            self._settle(turn)

    def close(self) -> None:
        for turn in self._turns.values():
            turn.done.set()

    def each(self, turn_ids: Iterable[str]) -> list[Turn]:
        return [turn for turn_id in turn_ids if (turn := self._turns.get(turn_id))]

    @staticmethod
    def _settle(turn: Turn) -> None:
        if not turn.awaiting and not turn.responses and not turn.calls:
            turn.done.set()
