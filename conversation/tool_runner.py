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
from typing import Any, Literal

from tools import ToolError, ToolRegistry

log = logging.getLogger(__name__)

CallStatus = Literal["実行中", "完了", "失敗", "タイムアウト", "キャンセル"]
DEFAULT_TIMEOUT = 60.0


@dataclass
class ToolCall:
    call_id: str
    name: str
    arguments: str
    causes: set[str] = field(default_factory=set)
    long_running: bool = False
    status: CallStatus = "実行中"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    summary: str = ""
    output: str = ""

    def elapsed(self, now: float | None = None) -> float:
        return (self.finished_at or now or time.time()) - self.started_at


def summarize(result: Any) -> str:
    """A one-line Japanese summary of a tool result for the status table."""
    if isinstance(result, dict):
        if "hits" in result:
            titles = "、".join(h.get("title", "") for h in result["hits"][:2])
            return f"{result.get('total', len(result['hits']))}件: {titles}" if result["hits"] else "該当なし"
        if "weather" in result:
            t_max, t_min = result.get("temperature_max"), result.get("temperature_min")
            temps = f" {t_max}℃/{t_min}℃" if t_max is not None and t_min is not None else ""
            return f"{result.get('place', '')} {result.get('date', '')} {result['weather']}{temps}"
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return text[:80]


class ToolRunner:
    """Starts calls, enforces timeouts, and reports each call's single end."""

    def __init__(
        self,
        registry: ToolRegistry,
        on_change: Callable[[ToolCall], None],
        on_end: Callable[[ToolCall], Awaitable[None]],
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._registry = registry
        self._on_change = on_change
        self._on_end = on_end
        self._default_timeout = default_timeout
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.calls: dict[str, ToolCall] = {}

    def is_long_running(self, name: str) -> bool:
        tool = self._registry.get(name)
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
        call = ToolCall(call_id, name, arguments, status="キャンセル", finished_at=time.time())
        call.summary = "応答が中断されたため実行しませんでした"
        call.output = json.dumps({"status": "cancelled", "reason": "response interrupted"}, ensure_ascii=False)
        self.calls[call_id] = call
        self._on_change(call)
        return call

    async def _run(self, call: ToolCall) -> None:
        tool = self._registry.get(call.name)
        timeout = (tool.timeout if tool and tool.timeout else None) or self._default_timeout
        try:
            if tool is None:
                raise ToolError(f"「{call.name}」というツールはありません。")
            arguments = tool.parse(call.arguments)
            async with asyncio.timeout(timeout):
                result = await tool.function(**arguments)
            self._finish(call, "完了", {"status": "completed", "result": result}, summarize(result))
        except ToolError as exc:
            self._finish(call, "失敗", {"status": "failed", "error": str(exc)}, str(exc))
        except TimeoutError:
            message = f"{timeout:g}秒以内に終わらなかったため中止しました。"
            self._finish(call, "タイムアウト", {"status": "timeout", "error": message}, message)
        except asyncio.CancelledError:
            self._finish(call, "キャンセル", {"status": "cancelled"}, "セッション終了のため中止しました")
            raise
        except Exception as exc:  # a bug in a tool must fail that call, not the session
            log.exception("tool %s crashed", call.name)
            message = f"ツールの実行中にエラーが発生しました（{type(exc).__name__}）。"
            self._finish(call, "失敗", {"status": "failed", "error": message}, message)
        finally:
            self._tasks.pop(call.call_id, None)
        await self._on_end(call)

    def _finish(self, call: ToolCall, status: CallStatus, output: dict[str, Any], summary: str) -> None:
        call.status, call.finished_at, call.summary = status, time.time(), summary
        call.output = json.dumps(output, ensure_ascii=False, default=str)
        self._on_change(call)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        """Cancel every running call and wait until none is left (session end)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
