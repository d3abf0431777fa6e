"""The model's function calls in the conversation: which run, what the model is told, and when.

Completed calls run in the background (ToolRunner); every call gets exactly one output; a
long-running tool answers "started" at once and its result is added later as a new call/output
pair, followed by a request for a response that tells it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Protocol

from conversation.tool_runner import ToolCall, ToolRunner
from conversation.transcript import Item, Transcript
from conversation.turns import Turns
from realtime import dialect
from realtime.dialect import Event
from tools import Toolbox

log = logging.getLogger(__name__)

STARTED_OUTPUT = json.dumps(
    {"status": "started", "message": "バックグラウンドで実行中です。結果は後でお知らせします。"}, ensure_ascii=False
)


class Outbox(Protocol):
    """What the calls need of the conversation: the wire, and a way to ask for a response."""

    async def send(self, event: Event) -> None: ...

    def ask(self, turn_ids: set[str], *, tools_allowed: bool) -> None: ...


class FunctionCalls:
    def __init__(self, tools: Toolbox, transcript: Transcript, turns: Turns, outbox: Outbox,
                 on_change: Callable[[], None]) -> None:
        self.runner = ToolRunner(tools, lambda _call: on_change(), self._on_end)
        self._transcript, self._turns, self._outbox = transcript, turns, outbox
        self.closed = False

    def known(self, call_id: str) -> bool:
        return call_id in self.runner.calls

    async def on_item_done(self, raw: Event, response_id: str) -> None:
        """A function_call item is finished: run it if it completed, else answer it as cancelled."""
        call_id, name, arguments = raw.get("call_id", ""), raw.get("name", ""), raw.get("arguments", "")
        if self.known(call_id):
            return
        record = self._transcript.add(Item(raw.get("id", call_id), "function_call", call_id=call_id, name=name,
                                           arguments=arguments))
        if raw.get("status", "completed") != "completed":
            record.output = self.runner.skip(call_id, name, arguments).output
            await self._outbox.send(dialect.create_item(dialect.function_output_item(call_id, record.output)))
            return
        turn_ids = self._turns.call_started(call_id, response_id)
        call = self.runner.start(call_id, name, arguments, turn_ids)
        if call is None:
            return
        if call.long_running:
            # Answer at once so the model can say it has started; the result is told when ready.
            record.output = STARTED_OUTPUT
            await self._outbox.send(dialect.create_item(dialect.function_output_item(call_id, record.output)))
            self._outbox.ask(turn_ids, tools_allowed=True)

    async def _on_end(self, call: ToolCall) -> None:
        """A call ended: give the model its output (for a long one, a new result pair) and ask for words."""
        if self.closed:
            return
        turn_ids = self._turns.of_call(call.call_id)
        try:
            if call.long_running:
                result_id = f"{call.call_id}_r"[:32]
                item = self._transcript.add(Item(f"fc_{uuid.uuid4().hex[:20]}", "function_call", call_id=result_id,
                                                 name=call.name, arguments=call.arguments, output=call.output))
                await self._outbox.send(dialect.create_item(
                    {"id": item.item_id, **dialect.function_call_item(result_id, call.name, call.arguments)}))
                await self._outbox.send(dialect.create_item(dialect.function_output_item(result_id, call.output)))
            else:
                if record := self._transcript.call(call.call_id):
                    record.output = call.output
                await self._outbox.send(dialect.create_item(dialect.function_output_item(call.call_id, call.output)))
        except (ConnectionError, OSError):
            log.info("call %s ended while disconnected; the replay after reconnecting carries it", call.call_id)
        finally:
            # After a drop this request waits for the reconnect and replay, so the result is still told.
            self._outbox.ask(turn_ids, tools_allowed=not call.long_running)
            self._turns.call_ended(call.call_id)

    async def close(self) -> None:
        self.closed = True
        await self.runner.cancel_all()
