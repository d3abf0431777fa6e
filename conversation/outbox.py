"""The one way out of the conversation's parts: events for the service session, and responses to ask for.

The calls, the voice channel and the tool updates hold this narrow outbox, not the conversation,
so a tool result goes one way: runner → calls → outbox → link, and its follow-up through the gate.
"""

from __future__ import annotations

from collections.abc import Iterable

from conversation.gate import ResponseGate
from conversation.link import ServiceLink
from conversation.turns import Turns
from realtime.dialect import Event


class Outbox:
    def __init__(self, link: ServiceLink, turns: Turns, gate: ResponseGate) -> None:
        self._link, self._turns, self._gate = link, turns, gate

    async def send(self, event: Event) -> None:
        """To the service session now (raises ConnectionError while there is none)."""
        await self._link.send(event)

    def ask(self, turn_ids: Iterable[str] = (), *, tools_allowed: bool = True, separate: bool = False,
            first: bool = False, instructions: str = "") -> None:
        """A response on behalf of these turns, when the gate lets it go (they stay open until it is done)."""
        turn_ids = set(turn_ids)
        self._turns.requested(turn_ids)
        self._gate.request(turn_ids, tools_allowed=tools_allowed, separate=separate, first=first,
                           instructions=instructions)
