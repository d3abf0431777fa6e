"""Tools from the user's MCP servers, offered to the model beside the built-in ones.

Each configured server gets one client session, opened at start-up on the hub's own event loop (a
daemon thread: the app's loops come and go with Gradio, the sessions must not). A call hops to that
loop; cancelling it cancels the SDK's `call_tool` there, which sends `notifications/cancelled`.
Progress notifications hop back as the call's progress. A server that cannot start or dies is one log
line and shown as unavailable; a dead one is started again on its next call.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp import types as mcp_types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from pydantic import BaseModel

from mcp_config import ServerConfig, load_config
from settings import Settings
from tools import Tool, Toolbox, ToolContext, ToolError, json_object, plain_summary, registry

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 20.0  # for every server together, at start-up and at a restart
PING_SECONDS = 2.0  # a session that does not answer a ping this fast before a call is started again
_INVALID = re.compile(r"[^a-zA-Z0-9_-]")


def function_name(name: str) -> str:
    """A valid function name (`^[a-zA-Z0-9_-]{1,64}$`) for any tool or server name."""
    return (_INVALID.sub("_", name) or "tool")[:64]


def reason(exc: BaseException) -> str:
    """One line saying why, from the innermost cause of a (possibly grouped) failure; no traceback."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ServerLink:
    """One server's client session, owned by a task on the hub's loop; restarted on demand after it died."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.problem = ""  # why it is unavailable ("" while it works)
        self.tools: list[mcp_types.Tool] = []
        self._session: ClientSession | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[ClientSession]:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            if config.url:
                http = await stack.enter_async_context(create_mcp_http_client(headers=dict(config.headers)))
                read, write = await stack.enter_async_context(streamable_http_client(config.url, http_client=http))
            else:
                params = StdioServerParameters(command=config.command, args=list(config.args), env=dict(config.env))
                read, write = await stack.enter_async_context(stdio_client(params))
            yield await stack.enter_async_context(ClientSession(read, write))

    async def _serve(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        """Hold the session open until stopped; a server that cannot start is one log line."""
        try:
            async with self._open() as session:
                await session.initialize()
                self.tools = (await session.list_tools()).tools
                self._session, self.problem = session, ""
                ready.set_result(None)
                await stop.wait()
        except Exception as exc:  # the transport's failures arrive grouped and vary by server
            if not ready.done():
                self._unavailable(reason(exc), ready)
        finally:
            if self._stop is stop:
                self._session = None
        if not ready.done():
            self._unavailable("接続が閉じられました", ready)

    def _unavailable(self, why: str, ready: asyncio.Future[None] | None = None) -> None:
        self.problem = why
        log.error("MCP サーバー「%s」(%s) を起動できません: %s", self.config.name, self.config.where, why)
        if ready is not None:
            ready.set_result(None)

    async def _alive(self, session: ClientSession) -> bool:
        try:
            async with asyncio.timeout(PING_SECONDS):
                await session.send_ping()
            return True
        except Exception:  # closed, broken or silent: the same for us
            return False

    async def connect(self, timeout: float = START_TIMEOUT_SECONDS) -> ClientSession | None:
        """The open session, (re)starting the server when it has none or it died; None when it cannot start."""
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._session is not None and not await self._alive(self._session):
                log.warning("MCP サーバー「%s」(%s) との接続が切れていました。再起動します",
                            self.config.name, self.config.where)
                await self.close()
            if self._session is None:
                ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._stop = stop = asyncio.Event()
                task = asyncio.create_task(self._serve(ready, stop), name=f"mcp {self.config.name}")
                try:
                    await asyncio.wait_for(asyncio.shield(ready), timeout)
                except TimeoutError:
                    task.cancel()
                    self._unavailable(f"{timeout:g}秒以内に起動しませんでした")
            return self._session

    async def call(self, name: str, arguments: dict[str, Any],
                   progress: Callable[[float, float | None, str], None]) -> Any:
        session = await self.connect()
        if session is None:
            raise ToolError(f"MCP サーバー「{self.config.name}」を使えません（{self.problem}）。")

        async def report(done: float, total: float | None, message: str | None) -> None:
            progress(done, total, message or "")

        try:
            result = await session.call_tool(name, arguments, progress_callback=report)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the server answered with an error, or the connection ended under the call
            log.info("MCP tool %s of %s failed: %s", name, self.config.name, reason(exc))
            raise ToolError(f"MCP サーバー「{self.config.name}」のツールが失敗しました（{reason(exc)}）。") from None
        return tool_result(result)

    async def close(self) -> None:
        if self._stop:
            self._stop.set()
        self._session = None


def tool_result(result: mcp_types.CallToolResult) -> Any:
    """What the model is told: the structured result if any, else the text of the content blocks."""
    texts = [block.text if isinstance(block, mcp_types.TextContent) else f"[{block.type}]" for block in result.content]
    if result.is_error:
        raise ToolError("\n".join(texts) or "MCP ツールがエラーを返しました。")
    if result.structured_content is not None:
        return result.structured_content
    return "\n".join(texts)


@dataclass(frozen=True)
class McpTool(Tool):
    """An MCP server's tool: its JSON schema goes to the model as it is; the server validates arguments."""

    input_schema: dict[str, Any] | None = None

    def schema(self) -> dict[str, Any]:
        schema = dict(self.input_schema or {"type": "object", "properties": {}})
        schema.pop("title", None)
        return {"type": "function", "name": self.name, "description": self.description, "parameters": schema}

    def parse(self, raw_arguments: str) -> dict[str, Any]:
        return json_object(raw_arguments)

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        return await self.function(arguments, context)


class McpHub:
    """The configured servers' links on one event loop in a daemon thread."""

    def __init__(self, configs: list[ServerConfig]) -> None:
        self.links = [ServerLink(config) for config in configs]
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mcp servers", daemon=True)
        self._thread.start()
        self._closed = False

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start every server at once; waits until each is up or has failed (bounded)."""
        async def start_all() -> None:
            await asyncio.gather(*(link.connect(timeout) for link in self.links))
        asyncio.run_coroutine_threadsafe(start_all(), self.loop).result(timeout + 5)

    def tools(self, taken: set[str]) -> list[McpTool]:
        """A tool per listed MCP tool; a name taken by a built-in or another server gets its server's prefix."""
        listed = [(link, tool) for link in self.links for tool in link.tools]
        counts: dict[str, int] = {}
        for _link, tool in listed:
            counts[tool.name] = counts.get(tool.name, 0) + 1
        made = []
        for link, tool in listed:
            clash = counts[tool.name] > 1 or function_name(tool.name) in taken
            name = function_name(f"{link.config.name}_{tool.name}" if clash else tool.name)
            taken.add(name)
            made.append(McpTool(name, tool.description or tool.name, BaseModel,
                                self._caller(link, tool.name), link.config.background, None, plain_summary,
                                None, tool.input_schema))
        return made

    def _caller(self, link: ServerLink, name: str) -> Callable[[dict[str, Any], ToolContext], Any]:
        async def call(arguments: dict[str, Any], context: ToolContext) -> Any:
            here = asyncio.get_running_loop()

            def progress(done: float, total: float | None, message: str) -> None:
                here.call_soon_threadsafe(context.progress, done, total, message)

            # Cancelling this await cancels the call's task on the hub's loop (and so tells the server).
            future = asyncio.run_coroutine_threadsafe(link.call(name, arguments, progress), self.loop)
            return await asyncio.wrap_future(future)
        return call

    def unavailable(self) -> dict[str, str]:
        return {link.config.name: link.problem for link in self.links if link.problem}

    def close(self) -> None:
        """Stop every session (their servers end with them) and the loop."""
        if self._closed:
            return
        self._closed = True

        async def stop_all() -> None:
            await asyncio.gather(*(link.close() for link in self.links))
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.wait(tasks, timeout=5) if tasks else None

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)






def app_toolbox(settings: Settings) -> Toolbox:
    """The built-in tools, plus every tool of the servers in MCP_CONFIG (started here, before serving)."""
    toolbox = Toolbox.from_settings(settings)
    configs = load_config(settings.mcp_config) if settings.mcp_config else []
    if not configs:
        return toolbox
    hub = McpHub(configs)
    hub.start()
    atexit.register(hub.close)
    tools = registry.copy()
    for made in hub.tools(tools.names()):
        tools.add(made)
    ready = [link for link in hub.links if not link.problem]
    log.info("MCP: %d of %d servers ready, %d tools", len(ready), len(hub.links), len(tools.names()) -
             len(registry.names()))
    return replace(toolbox, registry=tools, servers=hub)
