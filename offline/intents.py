"""Deterministic, table-driven intent router for the offline (rule-based) engine.

`route(text)` maps one user utterance (Japanese or English) to an `Intent`. Weather and
search intents carry the arguments of the tool call the engine should make
(`get_weather` / `search_database`); every other kind has empty arguments.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["weather", "search", "cancel", "greeting", "help", "thanks", "unknown"]
Language = Literal["ja", "en"]

TOOL_FOR_KIND: dict[str, str] = {"weather": "get_weather", "search": "search_database", "cancel": "cancel_tool"}


@dataclass(frozen=True)
class Intent:
    kind: Kind
    arguments: dict[str, str] = field(default_factory=dict)
    language: Language = "ja"

    @property
    def tool(self) -> str | None:
        """Name of the tool to call for this intent, or None."""
        return TOOL_FOR_KIND.get(self.kind)


# --- normalization -------------------------------------------------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_JAPANESE_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
_TRAILING_PUNCT = "。.?!、,…~〜 "


def normalize(text: str) -> str:
    """NFKC, collapse whitespace, strip, drop trailing punctuation (case is kept)."""
    s = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text or "")).strip()
    return s.rstrip(_TRAILING_PUNCT).strip()


def detect_language(text: str) -> Language:
    return "ja" if _JAPANESE_CHAR.search(text or "") else "en"


# --- tables ----------------------------------------------------------------------------------

# Day words, most specific first ("day after tomorrow" contains "tomorrow").
_DAYS: list[tuple[str, re.Pattern[str]]] = [
    ("day_after_tomorrow", re.compile(r"明後日|あさって|(?:the\s+)?day\s+after\s+tomorrow")),
    ("tomorrow", re.compile(r"明日|あした|\btomorrow\b")),
    ("today", re.compile(r"今日|本日|今夜|今晩|\btoday\b|\btonight\b")),
]

# Strong words make a weather question on their own; weak words ("rain", 「雨」) only when
# the utterance is not phrased as a search (「雨について調べて」 is a search).
_WEATHER_STRONG = re.compile(r"天気|天候|気温|降水|予報|\bweather\b|\bforecast\b|\btemperature\b")
_WEATHER_WEAK = re.compile(
    r"雨|雪|晴れ|晴天|曇|くもり|傘|\brain(?:y|ing)?\b|\bsnow(?:y|ing)?\b|\bsunny\b|\bcloudy\b|\bumbrella\b"
)
_JA_WEATHER_WORD = re.compile(r"(?:最高|最低)?気温|天気|天候|降水|予報|雨|雪|晴|曇|くもり|傘")
_JA_PLACE_TRAIL = re.compile(r"(?:の|は|って|では|で|も|に|、|,|\s|あたり|辺り|周辺|付近|のほう|の方)+$")
_JA_PLACE_LEAD = re.compile(r"^(?:[のはでも、,\s]|今の|現在の)+")
# Greetings, thanks and fillers in front of a request: 「ありがとう、明日の天気は？」
_JA_LEAD_NOISE = re.compile(
    r"^(?:(?:こんにち[はわ]|こんばん[はわ]|おはよう(?:ございます)?|ありがとう(?:ございます)?|どうも|もしもし"
    r"|すみません|すいません|ねえ|ねぇ|えっと|えーと|あのー*(?=[ー、,\s])|じゃあ|それでは|では|ちなみに)[、,!\s]*)+"
)
_PLACE_STOPWORDS = {"どんな", "どう", "いい", "良い", "ここ", "こちら", "そっち", "外", "今", "現在", "近く"}

_EN_DAY_TAIL = (
    r"(?:\s*,?\s*(?:for\s+|on\s+)?(?:the\s+)?(?:day\s+after\s+tomorrow|tomorrow|today|tonight"
    r"|(?:right\s+)?now|this\s+(?:morning|afternoon|evening|week))\b)?(?:\s*,?\s*please)?\s*$"
)
_EN_PLACE: list[re.Pattern[str]] = [
    # "... weather in Tokyo tomorrow", "will it rain in Sapporo today"
    re.compile(
        r"\b(?:in|for|at)\s+(?!(?:the\s+)?(?:day\s+after\s+tomorrow|tomorrow|today|tonight)\b)"
        r"(?P<place>[^\W\d_][\w .'-]*?)" + _EN_DAY_TAIL
    ),
    # "Tokyo weather tomorrow"
    re.compile(r"^(?:the\s+)?(?P<place>[^\W\d_][\w .'-]*?)\s+(?:weather|forecast|temperature)\b"),
]
_EN_NOT_PLACE = {"what", "what's", "how", "how's", "is", "will", "the", "tell", "show", "check", "get",
                 "give", "today", "tomorrow", "current", "me", "it", "there"}

_JA_SEARCH_TRIGGER = re.compile(
    r"について|に関して|に関する|とは|って(?:何|なに|なん|どういう)|の情報|の記事|を?(?:調べ|しらべ|検索|探して"
    r"|探す|さがして|教えて|おしえて|知りたい|しりたい)"
)
# Phrasings that make a weak weather word ("雨", "rain") a search topic instead.
_JA_TOPIC_STYLE = re.compile(r"について|に関して|とは|って(?:何|なに|なん)|調べ|検索")
_JA_TOPIC_TRAIL = re.compile(
    r"(?:について(?:詳しく)?|に関して|に関する|の情報|の記事|を|が|は|って|とは|の|で|、|,|\s)+$"
)
_JA_TOPIC_LEAD = re.compile(r"^(?:ちょっと|詳しく|[、,\s])+")
_JA_SEARCH_PREFIXED = re.compile(r"^(?:検索|調べて)[:\s]+(?P<topic>.+)$")

_EN_SEARCH: list[re.Pattern[str]] = [
    re.compile(r"^(?:please\s+|can you\s+|could you\s+)?(?:search(?:\s+the\s+database)?|look\s*up|find"
               r"|google)\s+(?:for\s+|about\s+|on\s+)?(?P<topic>.+?)(?:\s*,?\s*please)?$"),
    re.compile(r"^(?:please\s+|can you\s+|could you\s+)?(?:tell|teach)\s+me\s+(?:more\s+)?about\s+"
               r"(?P<topic>.+?)(?:\s*,?\s*please)?$"),
    re.compile(r"^(?:i\s+want\s+to\s+know|i'd\s+like\s+to\s+know|i\s+wanna\s+know)\s+(?:more\s+)?about\s+"
               r"(?P<topic>.+)$"),
    re.compile(r"^(?:information|info|articles?)\s+(?:about|on)\s+(?P<topic>.+)$"),
    re.compile(r"^(?:what\s+is|what's|what\s+are|who\s+is|who\s+was|explain)\s+(?P<topic>.+)$"),
]
_EN_NOT_TOPIC = {"up", "this", "that", "it", "new", "you", "your name", "going on", "happening"}

_HELP: list[re.Pattern[str]] = [
    re.compile(r"^(?:ヘルプ|help|help me|help please)$"),
    re.compile(r"(?:何|なに|なん)(?:が|を)?(?:でき|出来)(?:る|ます)|できること|出来ること"),
    re.compile(r"^(?:この(?:アプリ|アシスタント|システム)?の)?使い方"),
    re.compile(r"^どう(?:やって)?使(?:う|えば|います)"),
    re.compile(r"\bwhat\s+(?:can|do)\s+you\s+do\b|\bwhat\s+are\s+you\s+able\s+to\s+do\b"),
    re.compile(r"\bhow\s+(?:do|can|should)\s+i\s+use\s+(?:this|you|it)\b"),
]
_GREETING = re.compile(
    r"こんにち[はわ]|おはよう|こんばん[はわ]|はじめまして|初めまして|もしもし|^やあ"
    r"|\b(?:hello|hi|hey|good\s+(?:morning|afternoon|evening)|nice\s+to\s+meet\s+you)\b"
)
_THANKS = re.compile(r"ありがと|有難う|有り難う|どうも|サンキュ|感謝|\bthanks?\b|\bthank\s+you\b|\bthx\b")


# --- helpers ---------------------------------------------------------------------------------


def _day(low: str) -> str:
    for label, pattern in _DAYS:
        if pattern.search(low):
            return label
    return "today"


def _strip_days(text: str) -> str:
    for _, pattern in _DAYS:
        text = pattern.sub("", text)
    return text


def _ja_place(text: str) -> str | None:
    body = _strip_days(_JA_LEAD_NOISE.sub("", text))
    match = _JA_WEATHER_WORD.search(body)
    if not match:
        return None
    place = _JA_PLACE_TRAIL.sub("", body[: match.start()])
    place = re.split(r"[、,]", place)[-1]
    place = _JA_PLACE_LEAD.sub("", place).strip()
    return place if place and place not in _PLACE_STOPWORDS else None


def _en_place(text: str, low: str) -> str | None:
    for pattern in _EN_PLACE:
        match = pattern.search(low)
        if not match:
            continue
        place = text[match.start("place") : match.end("place")].strip(" .'-")
        if place and place.split()[0].lower() not in _EN_NOT_PLACE:
            return place.title() if place == place.lower() else place
    return None


def _ja_topic(text: str) -> str | None:
    text = _JA_LEAD_NOISE.sub("", text)
    prefixed = _JA_SEARCH_PREFIXED.match(text)
    if prefixed:
        return prefixed.group("topic").strip() or None
    match = _JA_SEARCH_TRIGGER.search(text)
    if not match:
        return None
    topic = _JA_TOPIC_TRAIL.sub("", text[: match.start()])
    topic = _JA_TOPIC_LEAD.sub("", topic).strip()
    return topic or None


def _en_topic(text: str, low: str) -> str | None:
    for pattern in _EN_SEARCH:
        match = pattern.match(low)
        if match:
            topic = text[match.start("topic") : match.end("topic")].strip(" .,'\"")
            topic = re.sub(r"^(?:the|a|an)\s+", "", topic, flags=re.IGNORECASE)
            return topic if topic and topic.lower() not in _EN_NOT_TOPIC else None
    return None


def _is_weather(low: str, language: Language) -> bool:
    if _WEATHER_STRONG.search(low):
        return True
    if not _WEATHER_WEAK.search(low):
        return False
    looks_like_search = _JA_TOPIC_STYLE.search(low) if language == "ja" else _en_topic(low, low)
    return not looks_like_search


# --- public ----------------------------------------------------------------------------------


# 「やっぱり検索はやめて」: stop running tools (the search when it is named, else every one).
_CANCEL = re.compile(r"(?:やめて|止めて|とめて|中止|キャンセル|^(?:please\s+)?(?:cancel|stop)\b)")
_CANCEL_SEARCH = re.compile(r"(?:検索|調べ|search)")


def route(text: str) -> Intent:
    """Classify one utterance; weather/search intents carry the tool-call arguments."""
    norm = normalize(text)
    low = norm.translate(_ASCII_LOWER)  # same length as `norm`, so spans map back
    language = detect_language(norm)
    if not norm:
        return Intent("unknown", {}, language)
    if any(p.search(low) for p in _HELP):
        return Intent("help", {}, language)
    if _CANCEL.search(low):
        return Intent("cancel", {"tool": "search_database" if _CANCEL_SEARCH.search(low) else ""}, language)
    if _is_weather(low, language):
        place = _ja_place(norm) or _en_place(norm, low)  # mixed input: 「weather in 大阪」
        arguments = {"location": place} if place else {}
        arguments["day"] = _day(low)
        return Intent("weather", arguments, language)
    topic = _ja_topic(norm) or _en_topic(norm, low)
    if topic:
        return Intent("search", {"query": topic}, language)
    if _GREETING.search(low):
        return Intent("greeting", {}, language)
    if _THANKS.search(low):
        return Intent("thanks", {}, language)
    return Intent("unknown", {}, language)
