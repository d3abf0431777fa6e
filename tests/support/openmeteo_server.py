"""A local stand-in for Open-Meteo's forecast and geocoding APIs, for tests (stdlib only).

Usage::

    from support.openmeteo_server import forecast_payload, serve_open_meteo

    with serve_open_meteo() as om:
        service = WeatherService(om.forecast_url, om.geocoding_url, timeout=1.0)
        result = asyncio.run(service.forecast("パリ"))
        assert om.geocoding_requests[0].params["language"] == "ja"
        om.fail_with(500)      # every later request answers HTTP 500 (om.fail_with(None) to stop;
                               # om.fail_with(503, times=1) fails only the next request)
        om.delay(2.0)          # every later request waits 2 s before answering (om.delay(0) to stop)
        om.send_invalid_json() # answer 200 with a body that is not JSON
        om.forecast_hook = lambda body: {**body, "current": None}  # rewrite forecast bodies
        om.reset()             # clear switches, the hook, added places and recorded requests

What it serves (on 127.0.0.1, a free port):

* ``om.forecast_url`` (``/v1/forecast``): like Open-Meteo, only the ``daily`` / ``current`` variables
  asked for, ``forecast_days`` (default 7, at most 16), and ``timezone=auto`` resolved to a fixed
  offset of round(lon / 15) hours (``Asia/Tokyo`` for most of Japan). Without ``timezone`` it answers in GMT,
  as the real API does. The numbers are deterministic: ``forecast_payload(lat, lon)`` is the full body (every
  variable) the server answers from for those coordinates, so tests can compute expected values.
* ``om.geocoding_url`` (``/v1/search``): ``name`` matched case-insensitively against the Japanese
  and English names in ``om.places`` (パリ/Paris, ニューヨーク/New York, ロンドン/London,
  軽井沢/Karuizawa; ``om.add_place(Place(...))`` adds more). ``language=ja`` returns Japanese names.
  No match → a body without ``results``, as the real API does.
* ``om.requests``: every request received, as ``RecordedRequest(path, params)`` (params is a
  dict of the query string), also split into ``om.forecast_requests`` / ``om.geocoding_requests``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FORECAST_PATH = "/v1/forecast"
GEOCODING_PATH = "/v1/search"
_CODES = (0, 1, 2, 3, 45, 61, 63, 71, 80, 95)  # cycled through so tests see varied weather


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    params: dict[str, str]


@dataclass(frozen=True)
class Place:
    name_ja: str
    name_en: str
    latitude: float
    longitude: float
    country_ja: str = ""
    country_en: str = ""
    admin1_ja: str = ""
    admin1_en: str = ""
    timezone: str = "GMT"

    def as_result(self, language: str) -> dict[str, Any]:
        ja = language == "ja"
        return {
            "name": self.name_ja if ja else self.name_en,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "country": self.country_ja if ja else self.country_en,
            "admin1": self.admin1_ja if ja else self.admin1_en,
            "timezone": self.timezone,
        }


DEFAULT_PLACES = (
    Place(
        "パリ",
        "Paris",
        48.85341,
        2.3488,
        "フランス",
        "France",
        "イル＝ド＝フランス",
        "Île-de-France",
        "Europe/Paris",
    ),
    Place(
        "ニューヨーク",
        "New York",
        40.71427,
        -74.00597,
        "アメリカ合衆国",
        "United States",
        "ニューヨーク州",
        "New York",
        "America/New_York",
    ),
    Place(
        "ロンドン",
        "London",
        51.50853,
        -0.12574,
        "イギリス",
        "United Kingdom",
        "イングランド",
        "England",
        "Europe/London",
    ),
    Place("軽井沢", "Karuizawa", 36.3483, 138.5970, "日本", "Japan", "長野県", "Nagano", "Asia/Tokyo"),
)


def utc_offset_seconds(lat: float, lon: float) -> int:
    """The fixed offset that `timezone=auto` resolves to for these coordinates."""
    return max(-12, min(14, round(lon / 15))) * 3600


def _timezone_name(offset: int) -> str:
    hours = offset // 3600
    return "Asia/Tokyo" if hours == 9 else "GMT" if hours == 0 else f"GMT{hours:+d}"


def forecast_payload(
    lat: float, lon: float, days: int = 16, utc_offset: int | None = None, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The full response the server sends for (lat, lon) with every variable and `timezone=auto`.

    Day i of the daily series is local today + i; values depend only on (lat, lon, i).
    """
    offset = utc_offset_seconds(lat, lon) if utc_offset is None else utc_offset
    local_now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC) + dt.timedelta(seconds=offset)
    seed = round(abs(lat) * 100 + abs(lon) * 10)
    t_max = [round(10 + seed % 15 + i * 0.5, 1) for i in range(days)]
    return {
        "latitude": lat,
        "longitude": lon,
        "generationtime_ms": 0.1,
        "utc_offset_seconds": offset,
        "timezone": _timezone_name(offset),
        "timezone_abbreviation": _timezone_name(offset),
        "elevation": 40.0,
        "current_units": {
            "time": "iso8601",
            "temperature_2m": "°C",
            "weather_code": "wmo code",
            "wind_speed_10m": "km/h",
        },
        "current": {
            "time": local_now.strftime("%Y-%m-%dT%H:00"),
            "interval": 900,
            "temperature_2m": round(t_max[0] - 3, 1),
            "weather_code": _CODES[seed % len(_CODES)],
            "wind_speed_10m": round(seed % 20 + 0.5, 1),
        },
        "daily_units": {
            "time": "iso8601",
            "weather_code": "wmo code",
            "temperature_2m_max": "°C",
            "temperature_2m_min": "°C",
            "precipitation_probability_max": "%",
        },
        "daily": {
            "time": [(local_now.date() + dt.timedelta(days=i)).isoformat() for i in range(days)],
            "weather_code": [_CODES[(seed + i) % len(_CODES)] for i in range(days)],
            "temperature_2m_max": t_max,
            "temperature_2m_min": [round(t - 8, 1) for t in t_max],
            "precipitation_probability_max": [(seed * 7 + i * 10) % 101 for i in range(days)],
        },
    }


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


class _HTTPServer(ThreadingHTTPServer):
    block_on_close = False  # a delayed handler must not hold up shutdown
    daemon_threads = True
    owner: OpenMeteoServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are expected here


class OpenMeteoServer:
    """See the module docstring. Start with `start()` or use `serve_open_meteo()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="open-meteo-stub", daemon=True)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.places: list[Place] = list(DEFAULT_PLACES)
        self.requests: list[RecordedRequest] = []
        self._fail_status: int | None = None
        self._fail_times: int | None = None
        self._delay = 0.0
        self._invalid_json = False
        # Rewrites each successful forecast body before it is sent (e.g. to inject nulls).
        self.forecast_hook: Callable[[dict[str, Any]], Any] | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def forecast_url(self) -> str:
        return self.base_url + FORECAST_PATH

    @property
    def geocoding_url(self) -> str:
        return self.base_url + GEOCODING_PATH

    @property
    def forecast_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == FORECAST_PATH]

    @property
    def geocoding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == GEOCODING_PATH]

    def fail_with(self, status: int | None, times: int | None = None) -> None:
        """Answer later requests with HTTP `status` (all of them, or the next `times`); None stops."""
        with self._lock:
            self._fail_status, self._fail_times = status, times

    def delay(self, seconds: float) -> None:
        """Wait `seconds` before answering each later request (0 stops)."""
        self._delay = seconds

    def send_invalid_json(self, enabled: bool = True) -> None:
        self._invalid_json = enabled

    def add_place(self, place: Place) -> None:
        self.places.append(place)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.places[:] = DEFAULT_PLACES
            self._fail_status = self._fail_times = None
        self._delay, self._invalid_json, self.forecast_hook = 0.0, False, None

    def start(self) -> OpenMeteoServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes delayed handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpenMeteoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- request handling (runs on the server's threads) --

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        with self._lock:
            self.requests.append(RecordedRequest(url.path, params))
            status = self._fail_status
            if status is not None and self._fail_times is not None:
                self._fail_times -= 1
                if self._fail_times <= 0:
                    self._fail_status = self._fail_times = None
        if self._delay and self._closing.wait(self._delay):
            return
        if status is not None:
            return self._send(handler, status, {"error": True, "reason": f"simulated HTTP {status}"})
        if self._invalid_json:
            return self._send_raw(handler, 200, b"<html>not json</html>", "text/html")
        if url.path == FORECAST_PATH:
            status, body = self._forecast(params)
            hook = self.forecast_hook
            return self._send(handler, status, hook(body) if hook and status == 200 else body)
        if url.path == GEOCODING_PATH:
            return self._send(handler, *self._geocode(params))
        self._send(handler, 404, {"error": True, "reason": "Not Found"})

    def _forecast(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            lat, lon = float(params["latitude"]), float(params["longitude"])
            days = int(params.get("forecast_days", "7"))
        except (KeyError, ValueError):
            return 400, {"error": True, "reason": "Parameter 'latitude' and 'longitude' must be numbers"}
        if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 <= days <= 16):
            return 400, {"error": True, "reason": "Parameter out of range"}
        offset = None if params.get("timezone") == "auto" else 0  # the real API defaults to GMT
        full = forecast_payload(lat, lon, days, utc_offset=offset)
        sections = ("current", "current_units", "daily", "daily_units")
        body = {k: v for k, v in full.items() if k not in sections}
        for section in ("current", "daily"):
            wanted = [v for v in params.get(section, "").split(",") if v]
            unknown = [v for v in wanted if v not in full[section]]
            if unknown:
                return 400, {"error": True, "reason": f"Unknown variable '{unknown[0]}'"}
            if wanted:
                keep = ("time", "interval", *wanted)
                body[section] = {k: v for k, v in full[section].items() if k in keep}
                body[f"{section}_units"] = {k: v for k, v in full[f"{section}_units"].items() if k in keep}
        return 200, body

    def _geocode(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        name = params.get("name", "").strip().casefold()
        if not name:
            return 400, {"error": True, "reason": "Parameter 'name' is required"}
        count = int(params.get("count", "10") or 10)
        hits = [p for p in self.places if name in (p.name_ja.casefold(), p.name_en.casefold())]
        body: dict[str, Any] = {"generationtime_ms": 0.1}
        if hits:
            body["results"] = [p.as_result(params.get("language", "en")) for p in hits[:count]]
        return 200, body

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        self._send_raw(handler, status, json.dumps(body, ensure_ascii=False).encode(), "application/json")

    @staticmethod
    def _send_raw(handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", f"{content_type}; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@contextmanager
def serve_open_meteo() -> Iterator[OpenMeteoServer]:
    """Run an `OpenMeteoServer` on a free port of 127.0.0.1 for the duration of the block."""
    server = OpenMeteoServer().start()
    try:
        yield server
    finally:
        server.close()
