"""What the weather tests expect of the Open-Meteo stand-in: the coordinates sent and a day's forecast."""

from __future__ import annotations

from typing import Any

from services.weather import describe_weather_code
from support.openmeteo_server import OpenMeteoServer, forecast_payload

TOKYO = (35.69, 139.69)  # the built-in table's coordinates, as sent (2 decimals)
DAILY = ("weather_code", "temperature_2m_max", "temperature_2m_min", "precipitation_probability_max")


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
