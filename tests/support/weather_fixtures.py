"""Fixtures for the weather tests (a pytest plugin): the local Open-Meteo stand-in and a WeatherService on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from services.weather import WeatherService
from support.openmeteo_server import OpenMeteoServer, serve_open_meteo


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
