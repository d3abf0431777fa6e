"""WeatherService when Open-Meteo fails or answers oddly, its cache, and the WMO weather codes."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from typing import Any

import pytest
from support.openmeteo_server import OpenMeteoServer
from support.weather_expect import DAILY

from services.weather import WeatherError, WeatherService, describe_weather_code

pytest_plugins = ["support.weather_fixtures"]  # the Open-Meteo stand-in and the service (shared fixtures)


@pytest.mark.asyncio
async def test_unreachable_server_fails_fast() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    svc = WeatherService(f"{url}/forecast", f"{url}/search", timeout=1.0)
    start = time.monotonic()
    try:
        with pytest.raises(WeatherError, match="接続できませんでした") as err:
            await svc.forecast("東京")
    finally:
        await svc.aclose()
    assert time.monotonic() - start < 1.5
    assert "127.0.0.1" not in str(err.value)


@pytest.mark.asyncio
async def test_slow_server_times_out(om: OpenMeteoServer) -> None:
    om.delay(5.0)
    svc = WeatherService(om.forecast_url, om.geocoding_url, timeout=0.5)
    start = time.monotonic()
    try:
        with pytest.raises(WeatherError, match="タイムアウト"):
            await svc.forecast("東京")
    finally:
        await svc.aclose()
    assert time.monotonic() - start < 1.5


@pytest.mark.asyncio
async def test_http_500_then_recovery(service: WeatherService, om: OpenMeteoServer) -> None:
    om.fail_with(500, times=1)
    with pytest.raises(WeatherError, match="HTTP 500") as err:
        await service.forecast("東京")
    assert "http://" not in str(err.value)
    result = await service.forecast("東京")  # failures are not cached
    assert result["place"] == "東京"
    assert len(om.forecast_requests) == 2


@pytest.mark.asyncio
async def test_geocoding_500(service: WeatherService, om: OpenMeteoServer) -> None:
    om.fail_with(503)
    with pytest.raises(WeatherError, match="HTTP 503"):
        await service.forecast("ロンドン")


@pytest.mark.asyncio
async def test_invalid_json(service: WeatherService, om: OpenMeteoServer) -> None:
    om.send_invalid_json()
    with pytest.raises(WeatherError, match="不正な応答"):
        await service.forecast("東京")


@pytest.mark.asyncio
@pytest.mark.parametrize("body", [{}, {"daily": {}}, {"daily": {"time": 3}}, [1, 2], {"daily": {"time": []}}])
async def test_malformed_forecast_is_a_weather_error(
    service: WeatherService, om: OpenMeteoServer, body: Any
) -> None:
    om.forecast_hook = lambda _: body
    with pytest.raises(WeatherError):
        await service.forecast("東京")


@pytest.mark.asyncio
async def test_null_values_are_tolerated(service: WeatherService, om: OpenMeteoServer) -> None:
    def nulls(body: dict[str, Any]) -> dict[str, Any]:
        for key in DAILY:
            body["daily"][key][0] = None
        body["current"] = {"time": None, "temperature_2m": None, "weather_code": None, "wind_speed_10m": None}
        return body

    om.forecast_hook = nulls
    result = await service.forecast("東京")
    assert result["weather"] == "不明"
    assert result["weather_code"] is None
    assert result["temperature_max"] is None and result["precipitation_probability"] is None
    assert result["current"] == {"temperature": None, "weather": "不明", "wind_speed": None, "time": None}


@pytest.mark.asyncio
async def test_cache(service: WeatherService, om: OpenMeteoServer) -> None:
    first = await service.forecast("東京")
    assert await service.forecast("東京") == first
    assert await service.forecast("Tokyo", "tomorrow")  # same coordinates, other day: still cached
    assert len(om.forecast_requests) == 1

    await service.forecast("パリ")
    await service.forecast("パリ", "明日")
    assert len(om.geocoding_requests) == 1
    assert len(om.forecast_requests) == 2


@pytest.mark.asyncio
async def test_cache_can_be_disabled(om: OpenMeteoServer) -> None:
    svc = WeatherService(om.forecast_url, om.geocoding_url, timeout=1.0, cache_ttl=0)
    try:
        await svc.forecast("東京")
        await svc.forecast("東京")
    finally:
        await svc.aclose()
    assert len(om.forecast_requests) == 2


def test_service_survives_successive_event_loops(om: OpenMeteoServer) -> None:
    svc = WeatherService(om.forecast_url, om.geocoding_url, timeout=1.0, cache_ttl=0)  # built outside a loop
    assert asyncio.run(svc.forecast("東京"))["place"] == "東京"
    assert asyncio.run(svc.forecast("大阪"))["place"] == "大阪"
    asyncio.run(svc.aclose())


def test_urls_default_to_open_meteo_and_an_argument_points_elsewhere() -> None:
    default = WeatherService()
    assert default.forecast_url == "https://api.open-meteo.com/v1/forecast"
    assert default.geocoding_url == "https://geocoding-api.open-meteo.com/v1/search"
    configured = WeatherService("http://127.0.0.1:9/f", "http://127.0.0.1:9/g")
    assert (configured.forecast_url, configured.geocoding_url) == ("http://127.0.0.1:9/f", "http://127.0.0.1:9/g")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0, "快晴"), (1, "晴れ"), (2, "晴れ時々曇り"), (3, "曇り"), (45, "霧"), (48, "霧"),
        (51, "霧雨"), (53, "霧雨"), (55, "霧雨"), (56, "着氷性の霧雨"), (57, "着氷性の霧雨"),
        (61, "小雨"), (63, "雨"), (65, "強い雨"), (66, "着氷性の雨"), (67, "着氷性の雨"),
        (71, "雪"), (73, "雪"), (75, "大雪"), (77, "雪"),
        (80, "にわか雨"), (81, "にわか雨"), (82, "にわか雨"), (85, "にわか雪"), (86, "にわか雪"),
        (95, "雷雨"), (96, "雷雨"), (99, "雷雨"),
    ],
)  # fmt: skip
def test_wmo_codes(code: int, text: str) -> None:
    assert text in describe_weather_code(code)
    assert describe_weather_code(float(code)) == describe_weather_code(code)


@pytest.mark.parametrize("code", [None, 4, 100, -1, True, 3.5, math.nan, math.inf, "3"])
def test_unknown_wmo_codes(code: Any) -> None:
    assert describe_weather_code(code) == "不明"
