"""The assistant's tools. Adding one is writing an async function with `@tool`.

The JSON schema the model sees comes from the signature, type hints and docstring (pydantic
derives it), and the model's arguments are validated against it before the function runs.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, create_model

from services.knowledge import default_knowledge_base
from services.weather import WeatherError, WeatherService


class ToolError(Exception):
    """A failure whose message is meant for the model and the user (Japanese, no internals)."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    function: Callable[..., Awaitable[Any]]
    long_running: bool
    timeout: float | None

    def schema(self) -> dict[str, Any]:
        """The `tools` entry of `session.update`."""
        parameters = self.arguments.model_json_schema()
        parameters.pop("title", None)
        for prop in parameters.get("properties", {}).values():
            prop.pop("title", None)
        return {"type": "function", "name": self.name, "description": self.description, "parameters": parameters}

    def parse(self, raw_arguments: str) -> dict[str, Any]:
        """Validate the model's JSON arguments; raise ToolError with a readable reason."""
        try:
            data = json.loads(raw_arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ToolError(f"引数が正しい JSON ではありません: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ToolError("引数は JSON オブジェクトで渡してください。")
        try:
            return self.arguments.model_validate(data).model_dump()
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '引数'}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"引数が不正です: {problems}") from None


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def tool(
        self, *, long_running: bool = False, timeout: float | None = None
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """Register an async function as a tool (`long_running` ones answer later, in the background)."""

        def register(function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            if not inspect.iscoroutinefunction(function):
                raise TypeError(f"tool {function.__name__} must be async")
            fields: dict[str, Any] = {}
            for name, param in inspect.signature(function).parameters.items():
                annotation = function.__annotations__.get(name, str)
                default = ... if param.default is inspect.Parameter.empty else param.default
                fields[name] = (annotation, default)
            model = create_model(f"{function.__name__}_arguments", **fields)
            description = inspect.cleandoc(function.__doc__ or function.__name__)
            self._tools[function.__name__] = Tool(
                function.__name__, description, model, function, long_running, timeout
            )
            return function

        return register

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self._tools.values()]

    def __iter__(self):
        return iter(self._tools.values())


registry = ToolRegistry()
tool = registry.tool

_weather: dict[tuple[str, str], WeatherService] = {}


def weather_service() -> WeatherService:
    """One service (with its cache) per configured pair of Open-Meteo URLs."""
    key = (os.environ.get("OPEN_METEO_FORECAST_URL", ""), os.environ.get("OPEN_METEO_GEOCODING_URL", ""))
    if key not in _weather:
        _weather[key] = WeatherService()
    return _weather[key]


@tool()
async def get_weather(
    location: Annotated[str, Field(description="場所の名前（例: 東京、大阪、札幌、Tokyo、パリ）")],
    day: Annotated[
        str,
        Field(description="today / tomorrow / day_after_tomorrow、または YYYY-MM-DD 形式の日付（16日先まで）"),
    ] = "today",
) -> dict[str, Any]:
    """指定した場所の天気予報（天気、最高・最低気温、降水確率、今日なら現在の気温）を取得します。"""
    try:
        return await weather_service().forecast(location, day)
    except WeatherError as exc:
        raise ToolError(str(exc)) from None


def search_latency() -> float:
    try:
        return max(0.0, float(os.environ.get("SEARCH_LATENCY_SECONDS", "20")))
    except ValueError:
        return 20.0


@tool(long_running=True)
async def search_database(
    query: Annotated[str, Field(min_length=1, description="検索する話題やキーワード（例: 機械学習、音声認識）")],
    limit: Annotated[int, Field(ge=1, le=10, description="返す記事の最大数")] = 3,
) -> dict[str, Any]:
    """社内ナレッジベース（AI・機械学習・データサイエンスなどの記事）を全文検索します。時間のかかる処理です。"""
    result = await asyncio.to_thread(default_knowledge_base().search, query, limit)
    await asyncio.sleep(search_latency())  # the original app's slow database, kept so the async flow is visible
    return result.to_dict()

