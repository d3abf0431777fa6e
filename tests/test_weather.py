"""WeatherService against the local Open-Meteo stand-in (no internet needed)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from services.weather import WeatherError, WeatherService, describe_weather_code
from tests.openmeteo_server import OpenMeteoServer, forecast_payload, serve_open_meteo

TOKYO = (35.69, 139.69)  # the built-in table's coordinates, as sent (2 decimals)
DAILY = ("weather_code", "temperature_2m_max", "temperature_2m_min", "precipitation_probability_max")


@pytest.fixture(scope="module")
def _server() -> Iterator[OpenMeteoServer]:
    with serve_open_meteo() as server:
        yield server


@pytest.fixture
def om(_server: OpenMeteoServer) -> Iterator[OpenMeteoServer]:
    _server.reset()
    yield _server
    _server.reset()


@pytest_asyncio.fixture
async def service(om: OpenMeteoServer) -> AsyncIterator[WeatherService]:
    svc = WeatherService(om.forecast_url, om.geocoding_url, timeout=1.0)
    yield svc
    await svc.aclose()


def expected_day(lat: float, lon: float, index: int) -> dict[str, Any]:
    daily = forecast_payload(lat, lon)["daily"]
    code = daily["weather_code"][index]
    return {
        "date": daily["time"][index],
        "weather": describe_weather_code(code),
        "weather_code": code,
        "temperature_max": daily["temperature_2m_max"][index],
        "temperature_min": daily["temperature_2m_min"][index],
        "precipitation_probability": daily["precipitation_probability_max"][index],
    }


def sent_coordinates(om: OpenMeteoServer) -> tuple[float, float]:
    params = om.forecast_requests[-1].params
    return float(params["latitude"]), float(params["longitude"])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("location", "place", "coords"),
    [
        ("東京", "東京", TOKYO),
        ("大阪市", "大阪", (34.69, 135.50)),
        ("Tokyo", "東京", TOKYO),
        ("sapporo", "札幌", (43.06, 141.35)),
        ("  東京都 ", "東京", TOKYO),
        ("大阪府", "大阪", (34.69, 135.50)),
        ("札幌市", "札幌", (43.06, 141.35)),
        ("京都", "京都", (35.01, 135.77)),
        ("京都府", "京都", (35.01, 135.77)),
        ("Osaka City", "大阪", (34.69, 135.50)),
        ("ＫＹＯＴＯ", "京都", (35.01, 135.77)),
        ("愛知県", "名古屋（愛知県）", (35.18, 136.91)),
        ("那覇", "那覇", (26.21, 127.68)),
        ("北九州市", "北九州", (33.88, 130.88)),
    ],
)
async def test_builtin_places_skip_geocoding(
    service: WeatherService, om: OpenMeteoServer, location: str, place: str, coords: tuple[float, float]
) -> None:
    result = await service.forecast(location)
    assert result["place"] == place
    assert om.geocoding_requests == []
    assert len(om.forecast_requests) == 1
    assert sent_coordinates(om) == pytest.approx(coords)
    params = om.forecast_requests[0].params
    assert params["timezone"] == "auto"
    assert params["forecast_days"] == "16"
    assert params["daily"] == ",".join(DAILY)
    assert params["current"] == "temperature_2m,weather_code,wind_speed_10m"


@pytest.mark.asyncio
async def test_foreign_place_goes_through_geocoding(service: WeatherService, om: OpenMeteoServer) -> None:
    result = await service.forecast("パリ", "tomorrow")
    assert result["place"] == "パリ（フランス）"
    [geo] = om.geocoding_requests
    assert geo.params == {"name": "パリ", "count": "1", "language": "ja", "format": "json"}
    lat, lon = sent_coordinates(om)
    assert (lat, lon) == pytest.approx((48.85, 2.35))
    assert {k: result[k] for k in expected_day(lat, lon, 1)} == expected_day(lat, lon, 1)

    english = await service.forecast("Paris")
    assert english["place"] == "パリ（フランス）"  # language=ja makes names Japanese
    assert (await service.forecast("軽井沢"))["place"] == "軽井沢（長野県）"  # prefecture for Japan


@pytest.mark.asyncio
async def test_today_has_exact_shape_and_current(service: WeatherService, om: OpenMeteoServer) -> None:
    result = await service.forecast("東京", "today")
    sent = forecast_payload(*TOKYO)["current"]
    assert result == {
        "place": "東京",
        "day": "today",
        **expected_day(*TOKYO, 0),
        "current": {
            "temperature": sent["temperature_2m"],
            "weather": describe_weather_code(sent["weather_code"]),
            "wind_speed": sent["wind_speed_10m"],
            "time": result["current"]["time"],  # the hour the server answered in
        },
        "source": "Open-Meteo",
    }
    assert result["current"]["time"][:10] == result["date"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("day", "label", "index"),
    [
        ("tomorrow", "tomorrow", 1),
        ("明日", "tomorrow", 1),
        ("day_after_tomorrow", "day_after_tomorrow", 2),
        ("明後日", "day_after_tomorrow", 2),
        ("あさって", "day_after_tomorrow", 2),
        ("今日", "today", 0),
    ],
)
async def test_relative_days_pick_the_right_index(
    service: WeatherService, om: OpenMeteoServer, day: str, label: str, index: int
) -> None:
    result = await service.forecast("大阪", day)
    assert result["day"] == label
    assert {k: result[k] for k in expected_day(34.69, 135.50, index)} == expected_day(34.69, 135.50, index)
    assert (result["current"] is None) == (index != 0)


@pytest.mark.asyncio
async def test_days_follow_the_place_local_calendar(service: WeatherService, om: OpenMeteoServer) -> None:
    # New York is 5 hours behind UTC here: its "today" can differ from Tokyo's.
    result = await service.forecast("ニューヨーク")
    lat, lon = sent_coordinates(om)
    local_today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=-5)).date().isoformat()
    assert result["date"] == local_today == expected_day(lat, lon, 0)["date"]


@pytest.mark.asyncio
async def test_iso_date_in_range(service: WeatherService, om: OpenMeteoServer) -> None:
    times = forecast_payload(*TOKYO)["daily"]["time"]
    result = await service.forecast("東京", times[5])
    assert result["day"] == "date"
    assert result == {**result, **expected_day(*TOKYO, 5)}
    assert result["current"] is None
    last = await service.forecast("東京", times[15])  # the 16th day is the last one
    assert last["date"] == times[15]
    assert len(om.forecast_requests) == 1  # both days come from one cached response


@pytest.mark.asyncio
async def test_iso_date_out_of_range(service: WeatherService, om: OpenMeteoServer) -> None:
    today = dt.date.fromisoformat(forecast_payload(*TOKYO)["daily"]["time"][0])
    far = (today + dt.timedelta(days=30)).isoformat()
    with pytest.raises(WeatherError, match="範囲外") as err:
        await service.forecast("東京", far)
    assert far in str(err.value)
    assert om.requests == []  # rejected without asking the service

    for date in (today + dt.timedelta(days=16), today - dt.timedelta(days=1)):
        with pytest.raises(WeatherError, match="範囲外"):
            await service.forecast("東京", date.isoformat())


@pytest.mark.asyncio
@pytest.mark.parametrize("day", ["来週", "2026-13-45", "next week"])
async def test_unknown_day_is_rejected(service: WeatherService, om: OpenMeteoServer, day: str) -> None:
    with pytest.raises(WeatherError, match="日付"):
        await service.forecast("東京", day)
    assert om.requests == []


@pytest.mark.asyncio
async def test_unknown_place(service: WeatherService, om: OpenMeteoServer) -> None:
    with pytest.raises(WeatherError) as err:
        await service.forecast("アトランティス")
    assert "アトランティス" in str(err.value)
    assert "見つかりません" in str(err.value)
    assert len(om.geocoding_requests) == 1
    assert om.forecast_requests == []


@pytest.mark.asyncio
@pytest.mark.parametrize("location", ["", "   ", "\u3000", None])
async def test_empty_location(service: WeatherService, om: OpenMeteoServer, location: Any) -> None:
    with pytest.raises(WeatherError, match="場所"):
        await service.forecast(location)
    assert om.requests == []


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
