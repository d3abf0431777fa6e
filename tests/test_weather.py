"""WeatherService against the local Open-Meteo stand-in (no internet needed): places, days, forecasts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from support.openmeteo_server import OpenMeteoServer, forecast_payload
from support.weather_expect import DAILY, TOKYO, expected_day, sent_coordinates

from services.weather import WeatherError, WeatherService, describe_weather_code

pytest_plugins = ["support.weather_fixtures"]  # the Open-Meteo stand-in and the service (shared fixtures)

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
