"""Runs the model's function calls as background tasks, each ending exactly once.

The runner never touches the connection: it reports through two callbacks, so the session
decides what goes on the wire.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tools import Progress, Toolbox, ToolError

# Tools that manage the other calls: never cancelled by "cancel everything", never listed as running work.
CONTROL_TOOLS = frozenset({"cancel_tool", "list_running_tools"})

log = logging.getLogger(__name__)


class CallStatus(StrEnum):
    """Where a call stands; the UI owns the words shown for each."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class CancelReason(StrEnum):
    """Why a call was cancelled that nobody asked to stop; the UI owns the words (web/labels.py)."""

    RESPONSE_INTERRUPTED = "response_interrupted"  # it came in a cancelled response: never run
    SESSION_ENDED = "session_ended"


@dataclass
class ToolCall:
    call_id: str
    name: str
    arguments: str
    causes: set[str] = field(default_factory=set)
    long_running: bool = False
    status: CallStatus = CallStatus.RUNNING
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    summary: str = ""
    output: str = ""
    progress: Progress | None = None  # the latest the tool reported while running
    cancel_requested: bool = False  # by the user or the model (not the end of the session)
    cancel_reason: CancelReason | None = None  # cancelled without being asked to

    def elapsed(self, now: float | None = None) -> float:
        return (self.finished_at or now or time.time()) - self.started_at


class ToolRunner:
    """Starts calls, enforces timeouts, and reports each call's single end."""

    def __init__(
        self,
        tools: Toolbox,
        on_change: Callable[[ToolCall], None],
        on_end: Callable[[ToolCall], Awaitable[None]],
    ) -> None:
        self._tools = tools
        self._on_change = on_change
        self._on_end = on_end
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.calls: dict[str, ToolCall] = {}

    def is_long_running(self, name: str) -> bool:
        tool = self._tools.get(name)
        return bool(tool and tool.long_running)

    def start(self, call_id: str, name: str, arguments: str, causes: set[str]) -> ToolCall | None:
        """Run a completed call in the background; a repeated call id is ignored."""
        if call_id in self.calls:
            return None
        call = ToolCall(call_id, name, arguments, set(causes), self.is_long_running(name))
        self.calls[call_id] = call
        self._on_change(call)
        self._tasks[call_id] = asyncio.create_task(self._run(call), name=f"tool {name} {call_id}")
        return call

    def skip(self, call_id: str, name: str, arguments: str) -> ToolCall:
        """A call from a cancelled response: not run, but recorded and answered as cancelled."""
        call = ToolCall(call_id, name, arguments, status=CallStatus.CANCELLED, finished_at=time.time())
        call.cancel_reason = CancelReason.RESPONSE_INTERRUPTED
        call.output = json.dumps({"status": "cancelled", "reason": "response interrupted"}, ensure_ascii=False)
        self.calls[call_id] = call
        self._on_change(call)
        return call

    async def _run(self, call: ToolCall) -> None:
        tool = self._tools.get(call.name)
        timeout = (tool.timeout if tool and tool.timeout else None) or self._tools.timeout
        try:
            if tool is None:
                raise ToolError(f"「{call.name}」というツールはありません。")
            arguments = tool.parse(call.arguments)
            context = self._tools.context.for_call(lambda *report: self._progress(call, *report), self)
            async with asyncio.timeout(timeout):
                result = await tool.run(arguments, context)
            self._finish(call, CallStatus.DONE, {"status": "completed", "result": result}, tool.summarize(result))
        except ToolError as exc:
            self._finish(call, CallStatus.FAILED, {"status": "failed", "error": str(exc)}, str(exc))
        except TimeoutError:
            message = f"{timeout:g}秒以内に終わらなかったため中止しました。"
            self._finish(call, CallStatus.TIMEOUT, {"status": "timeout", "error": message}, message)
        except asyncio.CancelledError:
            if not call.cancel_requested:
                call.cancel_reason = CancelReason.SESSION_ENDED
                self._finish(call, CallStatus.CANCELLED, {"status": "cancelled"}, "")
                raise
            # Stopped on request: the call still ends normally, so the model is told it was cancelled.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            self._finish(call, CallStatus.CANCELLED, {"status": "cancelled", "reason": "cancelled on request"}, "")
        except Exception as exc:  # a bug in a tool must fail that call, not the session
            log.exception("tool %s crashed", call.name)
            message = f"ツールの実行中にエラーが発生しました（{type(exc).__name__}）。"
            self._finish(call, CallStatus.FAILED, {"status": "failed", "error": message}, message)
        finally:
            self._tasks.pop(call.call_id, None)
        await self._on_end(call)

    def _finish(self, call: ToolCall, status: CallStatus, output: dict[str, Any], summary: str) -> None:
        call.status, call.finished_at, call.summary = status, time.time(), summary
        call.output = json.dumps(output, ensure_ascii=False, default=str)
        self._on_change(call)

    def _progress(self, call: ToolCall, done: float, total: float | None = None, message: str = "") -> None:
        if call.status is CallStatus.RUNNING:
            call.progress = Progress(done, total, message or "")
            self._on_change(call)

    @property
    def running(self) -> int:
        return len(self._tasks)

    def running_names(self) -> list[str]:
        """Names of the running calls (oldest first), without the control tools."""
        return [self.calls[call_id].name for call_id in self._tasks if self.calls[call_id].name not in CONTROL_TOOLS]

    def cancel(self, name: str = "", call_id: str = "") -> list[str]:
        """Stop running calls: the one `call_id`, else those named `name`, else every one (the control tools
        excepted). Each still ends once, as cancelled. Returns the names of the calls stopped."""
        stopped = []
        for running_id, task in list(self._tasks.items()):
            call = self.calls[running_id]
            chosen = running_id == call_id if call_id else (call.name == name if name else
                                                              call.name not in CONTROL_TOOLS)
            if chosen and not call.cancel_requested:
                call.cancel_requested = True
                task.cancel()
                stopped.append(call.name)
        return stopped

    async def cancel_all(self) -> None:
        """Cancel every running call and wait until none is left (session end)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
