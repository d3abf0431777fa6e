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
from dataclasses import dataclass, field

from conversation.outbox import Outbox
from conversation.tool_runner import ToolCall, ToolRunner
from conversation.transcript import Item, Transcript
from conversation.turns import Turns
from realtime import dialect
from realtime.events import ServerItem
from tools import Toolbox

log = logging.getLogger(__name__)

STARTED_OUTPUT = json.dumps(
    {"status": "started", "message": "バックグラウンドで実行中です。結果は後でお知らせします。"}, ensure_ascii=False
)


@dataclass
class _FollowUp:
    """The response that tells what one response's calls gave: asked for once, when that response is
    done and every call of it has ended (a response may hold several calls, run at once)."""

    running: set[str] = field(default_factory=set)
    turn_ids: set[str] = field(default_factory=set)
    due: bool = False  # a call has something to tell
    response_done: bool = False


class FunctionCalls:
    def __init__(self, tools: Toolbox, transcript: Transcript, turns: Turns, outbox: Outbox,
                 on_change: Callable[[], None]) -> None:
        self.runner = ToolRunner(tools, lambda _call: on_change(), self._on_end)
        self._transcript, self._turns, self._outbox = transcript, turns, outbox
        self.closed = False
        self._follow_ups: dict[str, _FollowUp] = {}  # by response id
        self._response_of: dict[str, str] = {}  # call id → the response it came in

    def known(self, call_id: str) -> bool:
        return call_id in self.runner.calls

    async def on_item_done(self, done: ServerItem, response_id: str) -> None:
        """A function_call item is finished: run it if it completed, else answer it as cancelled."""
        call_id, name, arguments = done.call_id, done.name, done.arguments
        if self.known(call_id):
            return
        record = self._transcript.add(Item(done.id or call_id, "function_call", call_id=call_id, name=name,
                                           arguments=arguments))
        if (done.status or "completed") != "completed":
            record.output = self.runner.skip(call_id, name, arguments).output
            await self._outbox.send(dialect.create_item(dialect.function_output_item(call_id, record.output)))
            return
        turn_ids = self._turns.call_started(call_id, response_id)
        call = self.runner.start(call_id, name, arguments, turn_ids)
        if call is None:
            return
        if not call.long_running:
            self._follow_up(response_id, turn_ids, running=call_id)
            return
        # Answer at once so the model can say it has started; the result is told when ready.
        record.output = STARTED_OUTPUT
        await self._outbox.send(dialect.create_item(dialect.function_output_item(call_id, record.output)))
        self._follow_up(response_id, turn_ids)

    def _follow_up(self, response_id: str, turn_ids: set[str], *, running: str = "", ended: str = "") -> None:
        """Note a call of a response that is `running`, or has `ended` (or answered "started"), so it has
        something to tell; its turns stay open, and the follow-up is asked for once all of it is in."""
        follow_up = self._follow_ups.setdefault(response_id, _FollowUp())
        follow_up.turn_ids |= turn_ids
        self._turns.requested(turn_ids)
        if running:
            follow_up.running.add(running)
            self._response_of[running] = response_id
            return
        follow_up.running.discard(ended)
        follow_up.due = True
        self._ask_when_ready(response_id)

    def _ask_when_ready(self, response_id: str) -> None:
        follow_up = self._follow_ups.get(response_id)
        ready = follow_up is not None and not follow_up.running and (follow_up.response_done or not response_id)
        if not ready:
            return
        del self._follow_ups[response_id]
        if follow_up.due:
            self._outbox.ask(follow_up.turn_ids, tools_allowed=True)

    def response_done(self, response_id: str) -> None:
        """A response ended (or was lost with its connection): its follow-up may be asked for now."""
        if follow_up := self._follow_ups.get(response_id):
            follow_up.response_done = True
            self._ask_when_ready(response_id)

    def connection_lost(self) -> None:
        for response_id in list(self._follow_ups):
            self.response_done(response_id)

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
            if call.long_running:
                self._outbox.ask(turn_ids, tools_allowed=False)
            else:  # the calls of one response are told together, in one follow-up
                self._follow_up(self._response_of.pop(call.call_id, ""), turn_ids, ended=call.call_id)
            self._turns.call_ended(call.call_id)

    async def close(self) -> None:
        self.closed = True
        await self.runner.cancel_all()
