"""Talking while a tool works: a call still running after a while earns a short spoken update.

The update is a response asked for with instructions of its own (never a made-up user message),
sent only when the gate is quiet (no response active or waiting, the user not speaking), at most
one per UPDATE_GAP_SECONDS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from conversation.outbox import Outbox
from conversation.tool_runner import CONTROL_TOOLS, ToolCall, ToolRunner

UPDATE_GAP_SECONDS = 20.0
CHECK_SECONDS = 1.0

UPDATE_INSTRUCTIONS = (
    "（これはユーザーの発言ではなく、システムからの依頼です）ツール「{name}」がまだ実行中です"
    "（{elapsed:.0f}秒経過{progress}）。何をしているところか{hint}を、日本語の短い一文でユーザーに伝えてください。"
    "新しい質問はせず、ツールは呼ばないでください。"
)


def update_instructions(call: ToolCall, persona: str, now: float) -> str:
    """The response's instructions: the session's persona (they replace it for this response) and the update."""
    progress, hint = "", ""
    if call.progress:
        done, total = call.progress.done, call.progress.total
        progress = f"、進捗 {done:g}/{total:g}" if total else f"、進捗 {done:g}"
        progress += f"「{call.progress.message}」" if call.progress.message else ""
        hint = "と進み具合"
    update = UPDATE_INSTRUCTIONS.format(name=call.name, elapsed=call.elapsed(now), progress=progress, hint=hint)
    return f"{persona}\n\n{update}" if persona else update


class ToolUpdates:
    """Watches the running calls; asks for an update when one is due and the moment is quiet (`quiet`: the
    gate has nothing active or waiting, the user is not speaking, and the service is connected)."""

    def __init__(self, runner: ToolRunner, outbox: Outbox, quiet: Callable[[], bool], after: float,
                 persona: str) -> None:
        self._runner, self._outbox, self._quiet = runner, outbox, quiet
        self._after, self._persona = after, persona
        self._last = 0.0
        self.sent = 0

    def due(self, now: float) -> ToolCall | None:
        """The longest-running call that has run `after` seconds, if an update may be spoken now."""
        if self._after <= 0 or now - self._last < UPDATE_GAP_SECONDS:
            return None
        if not self._quiet():
            return None
        running = [call for call in self._runner.calls.values()
                   if call.finished_at is None and call.name not in CONTROL_TOOLS and call.elapsed(now) >= self._after]
        return min(running, key=lambda call: call.started_at, default=None)

    async def run(self) -> None:
        if self._after <= 0:
            return
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            now = time.time()
            call = self.due(now)
            if call is None:
                continue
            self._last = now
            self.sent += 1
            self._outbox.ask(tools_allowed=False, separate=True,
                             instructions=update_instructions(call, self._persona, now))
