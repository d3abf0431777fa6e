"""Open-Meteo forecast client (no API key) for the voice assistant's weather tool.

Every failure leaves `WeatherService.forecast` as a `WeatherError` whose text is a
short Japanese sentence the model can read to the user as is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import unicodedata
from typing import Any

import httpx

logger = logging.getLogger(__name__)

DEFAULT_FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
DEFAULT_GEOCODING_URL = "https://geocoding-api.open-meteo.com/v1/search"
FORECAST_DAYS = 16
_OUT_OF_RANGE = "日付 {} は予報の範囲外です（今日から16日先まで）"
_FORECAST_PARAMS = {
    "daily": "weather_code,temperature_2m_max,temperature_2m_min,precipitation_probability_max",
    "current": "temperature_2m,weather_code,wind_speed_10m",
    "timezone": "auto",  # daily dates are then the place's own calendar days
    "forecast_days": FORECAST_DAYS,
}


class WeatherError(Exception):
    """Failure with a user-facing Japanese message (never a URL or traceback)."""


# WMO code → Japanese as "code:text" pairs; a string keeps the table compact.
_WMO_TEXT = """
0:快晴 1:晴れ 2:晴れ時々曇り 3:曇り 45:霧 48:霧（着氷性） 51:弱い霧雨 53:霧雨 55:強い霧雨 56:弱い着氷性の霧雨
57:強い着氷性の霧雨 61:小雨 63:雨 65:強い雨 66:弱い着氷性の雨 67:強い着氷性の雨 71:小雪 73:雪 75:大雪
77:霧雪 80:弱いにわか雨 81:にわか雨 82:激しいにわか雨 85:弱いにわか雪 86:強いにわか雪 95:雷雨
96:雹を伴う雷雨 99:激しい雹を伴う雷雨
"""
_WMO = {int(code): text for code, text in (item.split(":") for item in _WMO_TEXT.split())}


def describe_weather_code(code: int | None) -> str:
    """Japanese description of a WMO weather code; 「不明」 for None/unknown codes."""
    if isinstance(code, bool) or not isinstance(code, (int, float)) or code % 1 != 0:
        return "不明"  # `% 1` also rejects NaN/inf
    return _WMO.get(int(code), "不明")


# Prefectural capitals and other large cities: "name romaji lat lon;" entries. Looking these
# up locally keeps the common case to one request; ~1 km precision is plenty for a forecast.
_CITIES = """
札幌 Sapporo 43.06 141.35; 青森 Aomori 40.82 140.74; 盛岡 Morioka 39.70 141.15; 仙台 Sendai 38.27 140.87;
秋田 Akita 39.72 140.10; 山形 Yamagata 38.24 140.36; 福島 Fukushima 37.75 140.47; 水戸 Mito 36.34 140.45;
宇都宮 Utsunomiya 36.57 139.88; 前橋 Maebashi 36.39 139.06; さいたま Saitama 35.86 139.65;
千葉 Chiba 35.61 140.11; 東京 Tokyo 35.69 139.69; 横浜 Yokohama 35.44 139.64; 新潟 Niigata 37.92 139.04;
富山 Toyama 36.70 137.21; 金沢 Kanazawa 36.56 136.66; 福井 Fukui 36.07 136.22; 甲府 Kofu 35.66 138.57;
長野 Nagano 36.65 138.18; 岐阜 Gifu 35.42 136.76; 静岡 Shizuoka 34.98 138.38; 名古屋 Nagoya 35.18 136.91;
津 Tsu 34.73 136.51; 大津 Otsu 35.00 135.87; 京都 Kyoto 35.01 135.77; 大阪 Osaka 34.69 135.50;
神戸 Kobe 34.69 135.20; 奈良 Nara 34.69 135.80; 和歌山 Wakayama 34.23 135.17; 鳥取 Tottori 35.50 134.24;
松江 Matsue 35.47 133.05; 岡山 Okayama 34.66 133.92; 広島 Hiroshima 34.39 132.46;
山口 Yamaguchi 34.19 131.47; 徳島 Tokushima 34.07 134.55; 高松 Takamatsu 34.34 134.05;
松山 Matsuyama 33.84 132.77; 高知 Kochi 33.56 133.53; 福岡 Fukuoka 33.59 130.40; 佐賀 Saga 33.25 130.30;
長崎 Nagasaki 32.75 129.88; 熊本 Kumamoto 32.80 130.71; 大分 Oita 33.24 131.61; 宮崎 Miyazaki 31.91 131.42;
鹿児島 Kagoshima 31.60 130.56; 那覇 Naha 26.21 127.68; 川崎 Kawasaki 35.53 139.70;
相模原 Sagamihara 35.57 139.37; 横須賀 Yokosuka 35.28 139.67; 八王子 Hachioji 35.67 139.32;
船橋 Funabashi 35.69 139.98; 浜松 Hamamatsu 34.71 137.73; 堺 Sakai 34.57 135.48; 姫路 Himeji 34.82 134.69;
倉敷 Kurashiki 34.59 133.77; 北九州 Kitakyushu 33.88 130.88; 旭川 Asahikawa 43.77 142.37;
函館 Hakodate 41.77 140.73; 郡山 Koriyama 37.40 140.36
"""
_ROWS = [row.split() for row in _CITIES.split(";")]
_BY_JA = {ja: (ja, float(lat), float(lon)) for ja, _, lat, lon in _ROWS}
_BY_EN = {en.lower(): (ja, float(lat), float(lon)) for ja, en, lat, lon in _ROWS}
# Prefectures named unlike their capital ("pref:capital"): the forecast is for the capital.
_PREFECTURE_TEXT = """
北海道:札幌 岩手:盛岡 宮城:仙台 茨城:水戸 栃木:宇都宮 群馬:前橋 埼玉:さいたま 神奈川:横浜 石川:金沢
山梨:甲府 愛知:名古屋 三重:津 滋賀:大津 兵庫:神戸 島根:松江 香川:高松 愛媛:松山 沖縄:那覇
"""
_PREFECTURES = dict(item.split(":") for item in _PREFECTURE_TEXT.split())
_JA_SUFFIXES = ("都", "道", "府", "県", "市")
_EN_SUFFIXES = (", japan", " japan", " prefecture", " city", "-shi", "-ken", "-fu", "-to")

_DAY_LABELS = ("today", "tomorrow", "day_after_tomorrow")  # index = days after local today
_DAY_WORDS = ("today 今日 きょう 本日", "tomorrow 明日 あした あす", "dayaftertomorrow 明後日 あさって")
_DAY_ALIASES = {word: offset for offset, words in enumerate(_DAY_WORDS) for word in words.split()}


def _lookup_builtin(location: str) -> tuple[str, float, float] | None:
    """Resolve a Japanese/English city or prefecture name from the built-in table."""
    ja = "".join(unicodedata.normalize("NFKC", location).split())
    candidates = [ja] + [ja[: -len(s)] for s in _JA_SUFFIXES if ja.endswith(s) and len(ja) > 1]
    for name in candidates:  # exact first, so 京都 is not read as 京 + 都
        if name in _BY_JA:
            return _BY_JA[name]
        if name in _PREFECTURES:
            capital, lat, lon = _BY_JA[_PREFECTURES[name]]
            return f"{capital}（{ja}）", lat, lon
    en = "".join(c for c in unicodedata.normalize("NFKD", location) if not unicodedata.combining(c))
    en = " ".join(en.lower().split())  # accents dropped above, so "Tōkyō" matches too
    for suffix in _EN_SUFFIXES:
        en = en.removesuffix(suffix)
    return _BY_EN.get(en.replace(" ", ""))


def _parse_day(day: str) -> tuple[str, int | dt.date]:
    """Map the day argument to (result label, offset from local today or ISO date)."""
    text = unicodedata.normalize("NFKC", str(day or "today")).strip().lower()
    offset = _DAY_ALIASES.get(text.replace("_", "").replace("-", "").replace(" ", ""))
    if offset is not None:
        return _DAY_LABELS[offset], offset
    try:
        date = dt.date.fromisoformat(text.replace("/", "-"))
    except ValueError:
        raise WeatherError(
            f"日付の指定『{day}』が分かりませんでした"
            "（今日・明日・明後日、または YYYY-MM-DD で指定してください）"
        ) from None
    # Reject far-off dates before any request; local "today" is within a day of UTC's.
    if not -1 <= (date - dt.datetime.now(dt.UTC).date()).days <= FORECAST_DAYS:
        raise WeatherError(_OUT_OF_RANGE.format(date))
    return "date", date


def _pick_index(times: list[str], utc_offset: Any, target: int | dt.date) -> tuple[int, int]:
    """Return (index of local today, index of the requested day) in daily `time`."""
    today = 0  # Open-Meteo starts the daily series at the place's local today...
    if isinstance(utc_offset, (int, float)) and not isinstance(utc_offset, bool):
        # ...but a cached response may have been fetched before local midnight.
        now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=utc_offset)
        if now.date().isoformat() in times:
            today = times.index(now.date().isoformat())
    if isinstance(target, dt.date):
        if target.isoformat() not in times[today:]:
            raise WeatherError(_OUT_OF_RANGE.format(target))
        return today, times.index(target.isoformat())
    return today, today + target


class _TTLCache:
    """Expiring entries in insertion order; the oldest goes first when full."""

    def __init__(self, ttl: float, max_entries: int = 128) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self.data: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any | None:
        expires, value = self.data.get(key, (0.0, None))
        return value if expires > time.monotonic() else None

    def put(self, key: Any, value: Any) -> None:
        self.data.pop(key, None)
        self.data[key] = (time.monotonic() + self.ttl, value)
        while len(self.data) > self.max_entries:
            del self.data[next(iter(self.data))]


class WeatherService:
    """Forecasts from Open-Meteo with built-in Japanese places, geocoding and caching."""

    def __init__(
        self,
        forecast_url: str | None = None,
        geocoding_url: str | None = None,
        timeout: float = 5.0,
        cache_ttl: float = 600.0,
    ) -> None:
        self.forecast_url = forecast_url or DEFAULT_FORECAST_URL
        self.geocoding_url = geocoding_url or DEFAULT_GEOCODING_URL
        self.timeout = timeout
        self._forecasts = _TTLCache(cache_ttl)
        self._places = _TTLCache(cache_ttl)
        # Created lazily: the service may be built before any event loop exists.
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    async def aclose(self) -> None:
        client, loop = self._client, self._client_loop
        self._client = self._client_loop = None
        if client is not None and loop is asyncio.get_running_loop():  # a dead loop's sockets are gone
            await client.aclose()

    async def forecast(self, location: str, day: str = "today") -> dict:
        """Forecast for `location` on `day`; raises only WeatherError."""
        try:
            return await self._forecast(location, day)
        except WeatherError:
            raise
        except Exception:  # the tool must never crash the conversation
            logger.exception("unexpected weather failure for %r", location)
            raise WeatherError("天気情報の取得中に予期しないエラーが発生しました") from None

    async def _forecast(self, location: str, day: str) -> dict:
        if not isinstance(location, str) or not location.strip():
            raise WeatherError("場所が指定されていません。都市名を教えてください")
        label, target = _parse_day(day)
        place, lat, lon = await self._resolve(location.strip())
        data = await self._fetch_forecast(lat, lon)
        try:
            daily = data["daily"]
            times = [str(t) for t in daily["time"]]
            today, index = _pick_index(times, data.get("utc_offset_seconds"), target)

            def pick(key: str) -> Any:
                values = daily.get(key) or []
                return _num(values[index]) if index < len(values) else None

            code = pick("weather_code")
            cur = data.get("current")
            current = None
            if index == today and isinstance(cur, dict):  # "current" is only meaningful today
                current = {
                    "temperature": _num(cur.get("temperature_2m")),
                    "weather": describe_weather_code(_num(cur.get("weather_code"))),
                    "wind_speed": _num(cur.get("wind_speed_10m")),
                    "time": cur.get("time") if isinstance(cur.get("time"), str) else None,
                }
            return {
                "place": place,
                "date": times[index],
                "day": label,
                "weather": describe_weather_code(code),
                "weather_code": int(code) if code is not None else None,
                "temperature_max": pick("temperature_2m_max"),
                "temperature_min": pick("temperature_2m_min"),
                "precipitation_probability": pick("precipitation_probability_max"),
                "current": current,
                "source": "Open-Meteo",
            }
        except (LookupError, TypeError, AttributeError, ValueError) as exc:
            logger.warning("unexpected forecast payload: %r", exc)
            raise WeatherError("天気サービスから予期しない形式の応答が返りました") from None

    async def _resolve(self, location: str) -> tuple[str, float, float]:
        builtin = _lookup_builtin(location)
        if builtin is not None:
            return builtin
        key = " ".join(unicodedata.normalize("NFKC", location).lower().split())
        if cached := self._places.get(key):
            return cached
        data = await self._get_json(
            self.geocoding_url, {"name": location, "count": 1, "language": "ja", "format": "json"}
        )
        try:  # Open-Meteo omits "results" when nothing matches
            hit = data["results"][0]
            lat, lon = float(hit["latitude"]), float(hit["longitude"])
            name = str(hit.get("name") or location)
        except (KeyError, TypeError, ValueError, IndexError):
            raise WeatherError(f"『{location}』という場所が見つかりませんでした") from None
        # Disambiguate for the listener: prefecture inside Japan, country elsewhere.
        region = hit.get("admin1") if hit.get("country") in ("日本", "Japan") else hit.get("country")
        place = (name, lat, lon) if not region or region == name else (f"{name}（{region}）", lat, lon)
        self._places.put(key, place)
        return place

    async def _fetch_forecast(self, lat: float, lon: float) -> dict:
        key = (round(lat, 2), round(lon, 2))
        if cached := self._forecasts.get(key):
            return cached
        params = {"latitude": key[0], "longitude": key[1], **_FORECAST_PARAMS}
        data = await self._get_json(self.forecast_url, params)
        if not isinstance(data, dict) or not isinstance(data.get("daily"), dict):
            raise WeatherError("天気サービスから予期しない形式の応答が返りました")
        self._forecasts.put(key, data)
        return data

    async def _get_json(self, url: str, params: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        # A client's connections belong to the loop that opened them, so a new loop
        # (e.g. successive asyncio.run calls) gets a fresh client.
        if self._client is None or self._client_loop is not loop:
            self._client, self._client_loop = httpx.AsyncClient(timeout=self.timeout), loop
        try:
            # httpx timeouts apply per phase; this bounds the whole request.
            async with asyncio.timeout(self.timeout):
                response = await self._client.get(url, params=params)
        except (TimeoutError, httpx.TimeoutException):
            raise WeatherError("天気サービスに接続できませんでした（タイムアウト）") from None
        except httpx.HTTPError as exc:
            logger.warning("weather request failed: %s", type(exc).__name__)
            raise WeatherError("天気サービスに接続できませんでした") from None
        if response.status_code >= 500:
            raise WeatherError(f"天気サービスが一時的に利用できません（HTTP {response.status_code}）")
        if response.status_code >= 400:
            logger.warning("weather request rejected: %s %s", response.status_code, response.text[:200])
            raise WeatherError(f"天気サービスへの問い合わせに失敗しました（HTTP {response.status_code}）")
        try:
            return response.json()
        except ValueError:
            raise WeatherError("天気サービスから不正な応答が返りました") from None


def _num(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
