"""The assistant's tools. Adding one is writing an async function with `@tool`.

The JSON schema the model sees comes from the signature, type hints and docstring (pydantic
derives it), and the model's arguments are validated against it before the function runs.
A parameter annotated `ToolContext` is not an argument: the runner passes the app's context there.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Protocol, get_type_hints

from pydantic import BaseModel, Field, ValidationError, create_model

from services.knowledge import KnowledgeBase, knowledge_base
from services.weather import WeatherError, WeatherService
from settings import Settings

SUMMARY_CHARS = 80
SEARCH_STEPS = 10  # progress reports over the search's slow wait
ToolFunction = Callable[..., Awaitable[Any]]


class ToolError(Exception):
    """A failure whose message is meant for the model and the user (Japanese, no internals)."""


@dataclass(frozen=True)
class Progress:
    """How far a running call is: `done` of `total` (None: unknown), and what it is doing."""

    done: float
    total: float | None = None
    message: str = ""


class RunningCalls(Protocol):
    """The calls running in the caller's conversation, as a tool may see and stop them."""

    def running_names(self) -> list[str]: ...

    def cancel(self, name: str = "") -> list[str]: ...


def _no_progress(_done: float, _total: float | None = None, _message: str = "") -> None:
    return None


def json_object(raw_arguments: str) -> dict[str, Any]:
    """The model's arguments as a JSON object (empty when none); ToolError with a readable reason otherwise."""
    try:
        data = json.loads(raw_arguments or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(f"引数が正しい JSON ではありません: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ToolError("引数は JSON オブジェクトで渡してください。")
    return data


@dataclass(frozen=True)
class ToolContext:
    """What tools run with: clients and knobs built once per app from the settings; the runner adds, per call,
    where progress goes and the conversation's running calls."""

    weather: WeatherService
    knowledge: KnowledgeBase
    search_latency: float = 0.0
    progress: Callable[[float, float | None, str], None] = field(default=_no_progress, repr=False)
    calls: RunningCalls | None = field(default=None, repr=False)

    def for_call(self, progress: Callable[[float, float | None, str], None], calls: RunningCalls) -> ToolContext:
        return replace(self, progress=progress, calls=calls)

    @classmethod
    def from_settings(cls, settings: Settings) -> ToolContext:
        return cls(WeatherService(settings.forecast_url, settings.geocoding_url),
                   knowledge_base(settings.search_db_path, settings.knowledge_dir), settings.search_latency)


def plain_summary(result: Any) -> str:
    """The default one-line summary: the result's text, cut short."""
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
    return text[:SUMMARY_CHARS]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    function: ToolFunction
    long_running: bool
    timeout: float | None
    summary: Callable[[Any], str] = plain_summary  # the status table's one line for a result
    context_parameter: str | None = None  # where the function takes the ToolContext, if it does

    def schema(self) -> dict[str, Any]:
        """The `tools` entry of `session.update`."""
        parameters = self.arguments.model_json_schema()
        parameters.pop("title", None)
        for prop in parameters.get("properties", {}).values():
            prop.pop("title", None)
        return {"type": "function", "name": self.name, "description": self.description, "parameters": parameters}

    def parse(self, raw_arguments: str) -> dict[str, Any]:
        """Validate the model's JSON arguments; raise ToolError with a readable reason."""
        data = json_object(raw_arguments)
        try:
            return self.arguments.model_validate(data).model_dump()
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '引数'}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"引数が不正です: {problems}") from None

    def summarize(self, result: Any) -> str:
        """The status table's line for a result; a summary that trips over an odd result falls back to text."""
        try:
            return self.summary(result)
        except (LookupError, TypeError, AttributeError, ValueError):
            return plain_summary(result)

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        """Call the function with validated arguments (and the context, if it asks for it)."""
        if self.context_parameter:
            arguments = {**arguments, self.context_parameter: context}
        return await self.function(**arguments)


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def tool(
        self, *, long_running: bool = False, timeout: float | None = None,
        summary: Callable[[Any], str] = plain_summary,
    ) -> Callable[[ToolFunction], ToolFunction]:
        """Register an async function as a tool.

        Args:
            long_running: answer "started" at once and tell the result later, in the background.
            timeout: seconds this tool may run (default: the app's TOOL_TIMEOUT_SECONDS).
            summary: turns a result into the status table's one line (default: its text, cut short).
        """

        def register(function: ToolFunction) -> ToolFunction:
            if not inspect.iscoroutinefunction(function):
                raise TypeError(f"tool {function.__name__} must be async")
            try:
                hints = get_type_hints(function, include_extras=True)
            except NameError:  # a name only the function's own scope knows: pydantic resolves what it can
                hints = function.__annotations__
            fields: dict[str, Any] = {}
            context_parameter = None
            for name, param in inspect.signature(function).parameters.items():
                annotation = hints.get(name, str)
                if annotation is ToolContext:
                    context_parameter = name  # supplied by the runner, never by the model
                    continue
                default = ... if param.default is inspect.Parameter.empty else param.default
                fields[name] = (annotation, default)
            model = create_model(f"{function.__name__}_arguments", **fields)
            description = inspect.cleandoc(function.__doc__ or function.__name__)
            self._tools[function.__name__] = Tool(function.__name__, description, model, function, long_running,
                                                  timeout, summary, context_parameter)
            return function

        return register

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self._tools.values()]

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def add(self, tool: Tool) -> None:
        """Offer a tool built elsewhere (an MCP server's)."""
        self._tools[tool.name] = tool

    def names(self) -> set[str]:
        return set(self._tools)

    def copy(self) -> ToolRegistry:
        copy = ToolRegistry()
        copy._tools = dict(self._tools)
        return copy


class ToolServers(Protocol):
    """Tools that come from servers the app started (MCP): which are unavailable, and how to stop them."""

    def unavailable(self) -> dict[str, str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Toolbox:
    """The tools one app offers and what they run with; built once per app, shared by its conversations."""

    registry: ToolRegistry
    context: ToolContext
    timeout: float = Settings.tool_timeout  # per call, unless the tool sets its own
    servers: ToolServers | None = None  # where tools beyond the built-in ones come from
    update_after: float = Settings.tool_update_seconds  # a call running this long earns a spoken update

    @classmethod
    def from_settings(cls, settings: Settings, tools: ToolRegistry | None = None) -> Toolbox:
        return cls(tools or registry, ToolContext.from_settings(settings), settings.tool_timeout,
                   update_after=settings.tool_update_seconds)

    def get(self, name: str) -> Tool | None:
        return self.registry.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        return self.registry.schemas()

    def unavailable(self) -> dict[str, str]:
        """Tool servers that could not be started or died (name → reason), for the log and the page."""
        return self.servers.unavailable() if self.servers else {}

    def close(self) -> None:
        if self.servers:
            self.servers.close()


registry = ToolRegistry()
tool = registry.tool


@functools.cache
def default_toolbox() -> Toolbox:
    """The built-in tools with default settings, for a conversation made outside the app (benchmarks, tests)."""
    return Toolbox.from_settings(Settings())


def weather_summary(result: dict[str, Any]) -> str:
    t_max, t_min = result.get("temperature_max"), result.get("temperature_min")
    temps = f" {t_max}℃/{t_min}℃" if t_max is not None and t_min is not None else ""
    return f"{result.get('place', '')} {result.get('date', '')} {result.get('weather', '')}{temps}"


@tool(summary=weather_summary)
async def get_weather(
    context: ToolContext,
    location: Annotated[str, Field(description="場所の名前（例: 東京、大阪、札幌、Tokyo、パリ）")],
    day: Annotated[
        str,
        Field(description="today / tomorrow / day_after_tomorrow、または YYYY-MM-DD 形式の日付（16日先まで）"),
    ] = "today",
) -> dict[str, Any]:
    """指定した場所の天気予報（天気、最高・最低気温、降水確率、今日なら現在の気温）を取得します。"""
    try:
        return await context.weather.forecast(location, day)
    except WeatherError as exc:
        raise ToolError(str(exc)) from None


def search_summary(result: dict[str, Any]) -> str:
    """How many documents matched, and which ones (title and file), so the table shows where answers came from."""
    hits = result.get("hits") or []
    names = "、".join(f"{h.get('title', '')}（{h['source']}）" if h.get("source") else h.get("title", "")
                     for h in hits[:2])
    return f"{result.get('total', len(hits))}件: {names}" if hits else "該当なし"


@tool(long_running=True, summary=search_summary)
async def search_database(
    context: ToolContext,
    query: Annotated[str, Field(min_length=1, description="検索する話題やキーワード（例: 機械学習、音声認識）")],
    limit: Annotated[int, Field(ge=1, le=10, description="返す記事の最大数")] = 3,
) -> dict[str, Any]:
    """ナレッジベース（利用者の文書フォルダ。既定は AI・機械学習などのサンプル記事）を日本語の全文検索で調べます。
    各結果の title・source（文書のファイル名）・snippet（一致した箇所）を見て答え、
    答えの出典として文書名を伝えてください。
    時間のかかる処理です。"""
    result = await asyncio.to_thread(context.knowledge.search, query, limit)
    # The original app's slow database, kept so the flow is visible; it reports how far it is.
    steps = max(1, min(SEARCH_STEPS, int(context.search_latency)))
    for step in range(1, steps + 1):
        await asyncio.sleep(context.search_latency / steps)
        context.progress(step, steps, "検索結果を確認しています")
    return result.to_dict()


@tool()
async def cancel_tool(
    context: ToolContext,
    tool: Annotated[str, Field(description="止めるツールの名前（空なら実行中のすべて）")] = "",
) -> dict[str, Any]:
    """実行中のツール（時間のかかる検索など）を中止します。ユーザーが「やっぱり検索はやめて」のように頼んだときに使います。
    tool を空にすると実行中のすべてを中止します。結果の cancelled は中止したもの、running はまだ実行中のものです。"""
    if context.calls is None:
        return {"cancelled": [], "running": []}
    running = context.calls.running_names()
    if tool and tool not in running:
        return {"cancelled": [], "running": running, "message": f"「{tool}」は実行中ではありません。"}
    cancelled = context.calls.cancel(tool)
    return {"cancelled": cancelled, "running": [name for name in context.calls.running_names()
                                                if name not in cancelled]}


@tool()
async def list_running_tools(context: ToolContext) -> dict[str, Any]:
    """いま実行中のツールの名前を返します。何が動いているかを聞かれたときや、止める前の確認に使います。"""
    return {"running": context.calls.running_names() if context.calls else []}
