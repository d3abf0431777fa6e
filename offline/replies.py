"""Natural Japanese (and English) answers of the offline engine; numbers as the TTS reads them well."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Literal

Language = Literal["ja", "en"]
SNIPPET_CHARS = 80  # first hit's snippet is shortened to about this many characters

_DAY_JA = {"today": "今日", "tomorrow": "明日", "day_after_tomorrow": "明後日"}
_DAY_EN = {"today": "Today", "tomorrow": "Tomorrow", "day_after_tomorrow": "The day after tomorrow"}
_FAILED_JA = {"get_weather": "天気情報の取得", "search_database": "検索"}
_FAILED_EN = {"get_weather": "the weather lookup", "search_database": "the search"}
_STARTED_JA = {"get_weather": "天気の確認", "search_database": "検索"}
_STARTED_EN = {"get_weather": "checking the weather", "search_database": "searching"}
_STARTED_TAIL = "結果が出たらお知らせします。他に何かお手伝いできることはありますか？"
_WMO_EN = {  # WMO `weather_code` in English (the result's "weather" field is Japanese)
    0: "clear", 1: "mostly clear", 2: "partly cloudy", 3: "cloudy", 45: "foggy", 48: "foggy",
    51: "light drizzle", 53: "drizzle", 55: "heavy drizzle", 56: "freezing drizzle", 57: "freezing drizzle",
    61: "light rain", 63: "rain", 65: "heavy rain", 66: "freezing rain", 67: "freezing rain",
    71: "light snow", 73: "snow", 75: "heavy snow", 77: "snow grains", 80: "light showers",
    81: "showers", 82: "heavy showers", 85: "snow showers", 86: "heavy snow showers",
    95: "thunderstorms", 96: "thunderstorms with hail", 99: "severe thunderstorms with hail",
}  # fmt: skip


def _number(value: Any) -> int | None:
    """Round half away from zero to an int; None for missing/non-numeric/non-finite values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _degrees(value: int, language: Language) -> str:
    """15 -> 「15度」, -3 -> 「マイナス3度」 (the TTS would drop a bare minus sign)."""
    minus, unit = ("minus ", " degrees") if language == "en" else ("マイナス", "度")
    return f"{minus if value < 0 else ''}{abs(value)}{unit}"


def describe_weather(result: dict, language: Language = "ja") -> str:
    """One or two sentences for a `get_weather` result; missing values are left out."""
    place = str(result.get("place") or "").strip()
    try:
        date: dt.date | None = dt.date.fromisoformat(str(result.get("date") or ""))
    except ValueError:
        date = None
    high, low = _number(result.get("temperature_max")), _number(result.get("temperature_min"))
    rain = _number(result.get("precipitation_probability"))
    current = result.get("current") if isinstance(result.get("current"), dict) else {}
    now = _number(current.get("temperature"))
    if language == "en":
        code = _number(result.get("weather_code"))
        weather = _WMO_EN.get(code if code is not None else -1, "")
        when = _DAY_EN.get(result.get("day")) or (f"On {date:%B} {date.day}" if date else "")
        head = " in ".join(p for p in (when, place) if p) or "The forecast"
        parts = [weather] if weather else []
        parts += [f"a high of {_degrees(high, 'en')}"] if high is not None else []
        parts += [f"a low of {_degrees(low, 'en')}"] if low is not None else []
        parts += [f"a {rain} percent chance of rain"] if rain is not None else []
        text = f"{head}: {', '.join(parts) or 'no forecast details are available'}."
        return text + (f" It is {_degrees(now, 'en')} right now." if now is not None else "")
    weather = str(result.get("weather") or "").strip().replace("不明", "")
    when = _DAY_JA.get(result.get("day")) or (f"{date.month}月{date.day}日" if date else "")
    head = "の".join(p for p in (when, place) if p)
    details = [f"最高気温は{_degrees(high, 'ja')}"] if high is not None else []
    details += [f"最低気温は{_degrees(low, 'ja')}"] if low is not None else []
    details += [f"降水確率は{rain}パーセント"] if rain is not None else []
    if weather:
        text = f"{head or '天気'}は{'、'.join([weather, *details])}です。"
    elif details:
        text = f"{head + 'の' if head else ''}{'、'.join(details)}です。"
    else:
        text = f"{head + 'の' if head else ''}天気の詳しい情報は取得できませんでした。"
    return text + (f"今の気温は{_degrees(now, 'ja')}です。" if now is not None else "")


def clean_snippet(snippet: str, limit: int = SNIPPET_CHARS) -> str:
    """Drop highlight markers and Markdown, then shorten to about `limit` characters."""
    text = re.sub(r"<[^>]+>|[「」『』*_`#>|]|^\s*[-+]\s+", "", str(snippet or ""))
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = " ".join(text.split()).strip(" …・.,、")
    if len(text) <= limit:
        return text
    cut = text[:limit]
    stop = max(cut.rfind("。"), cut.rfind("！"), cut.rfind("？"), cut.rfind(". "))
    if stop >= limit // 3:  # end on a whole sentence when one fits
        return cut[: stop + 1].strip()
    stop = max(cut.rfind("、"), cut.rfind(", "), cut.rfind(" "))
    return (cut[:stop] if stop >= limit // 2 else cut).rstrip(" 、,") + "…"


def describe_search(result: dict, language: Language = "ja") -> str:
    """Spoken summary of a `search_database` result: count, best hit, up to two other titles."""
    query = str(result.get("query") or "").strip()
    hits = [h for h in (result.get("hits") or []) if isinstance(h, dict)]
    if not hits:
        english = f'I couldn\'t find any articles about "{query}".'
        return english if language == "en" else f"「{query}」に関する記事は見つかりませんでした。"
    total = max(_number(result.get("total")) or 0, len(hits))
    others = [t for t in (str(h.get("title") or "").strip() for h in hits[1:3]) if t]
    more = total > 1 + len(others)
    title = str(hits[0].get("title") or "").strip()
    snippet = clean_snippet(hits[0].get("snippet", ""))
    if language == "en":
        text = f'I found {total} result{"s" if total != 1 else ""} for "{query}". '
        text += f'The most relevant is "{title}"' + (f": {snippet}" if snippet else "")
        text += "" if text.endswith((".", "。", "…", "!", "?")) else "."
        listed = " and ".join(f'"{t}"' for t in others)
        return text + (f" Others include {listed}{' among others' if more else ''}." if others else "")
    text = f"「{query}」の検索結果は{total}件です。いちばん関連が高いのは「{title}」"
    if snippet:
        text += f"で、{snippet}" + ("" if snippet.endswith(("。", "！", "？")) else "。")
    else:
        text += "です。"
    if others:
        text += "ほかに" + "".join(f"「{t}」" for t in others) + ("など" if more else "") + "があります。"
    return text


def describe_tool_failure(tool: str, message: str, language: Language = "ja") -> str:
    """Apology for a failed tool call; `message` is the tool's own user-facing reason."""
    message = " ".join(str(message or "").split())
    if language == "en":
        reason = f" {message.rstrip('.')}." if message and message.isascii() else ""
        return f"Sorry, {_FAILED_EN.get(tool, 'the request')} failed.{reason}"
    reason = message if not message or message.endswith(("。", "？", "！")) else message + "。"
    return f"申し訳ありません、{_FAILED_JA.get(tool, '処理')}に失敗しました。{reason}"


def greeting_reply(language: Language = "ja") -> str:
    if language == "en":
        return "Hello! I can check the weather or search the knowledge base. What would you like to know?"
    return "こんにちは！天気の確認や、ナレッジベースの検索ができます。何をお調べしましょうか？"


def help_reply(language: Language = "ja") -> str:
    if language == "en":
        return (
            "I'm running in offline mode, a rule-based assistant without a language model. I can answer "
            "weather questions such as \"What's the weather in Osaka tomorrow?\" and search the knowledge "
            "base, for example \"search for machine learning\". Speak or type your question. To switch to Azure "
            "OpenAI, set AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY and AZURE_OPENAI_DEPLOYMENT in the .env file."
        )
    return (
        "今はオフラインモードで、言語モデルを使わないルールベースの応答をしています。"
        "できるのは、天気の確認（例：「明日の大阪の天気は？」）と、"
        "ナレッジベースの検索（例：「AIについて調べて」）です。"
        "質問は話しかけても、テキストで入力しても構いません。Azure OpenAI の音声対話に切り替えるには、"
        ".env に AZURE_OPENAI_ENDPOINT、AZURE_OPENAI_API_KEY、AZURE_OPENAI_DEPLOYMENT を設定してください。"
    )


def thanks_reply(language: Language = "ja") -> str:
    if language == "en":
        return "You're welcome! Is there anything else I can help with?"
    return "どういたしまして。他に何かお手伝いできることはありますか？"


def unknown_reply(text: str = "", language: Language = "ja") -> str:
    said = " ".join(str(text or "").split())
    said = said if len(said) <= 30 else said[:30] + "…"
    if language == "en":
        lead = f'Sorry, I can\'t answer "{said}". ' if said else "Sorry, I can't answer that. "
        return lead + (
            "Offline mode is rule-based: I can only check the weather and search the knowledge base. "
            'Try "What\'s the weather in Tokyo tomorrow?" or "search for AI".'
        )
    lead = f"すみません、「{said}」には" if said else "すみません、その質問には"
    return lead + (
        "お答えできません。オフラインモードはルールベースで動いているため、"
        "天気の確認とナレッジベースの検索だけに対応しています。"
        "例えば「明日の大阪の天気は？」や「AIについて調べて」のように入力してください。"
    )


def ask_place_reply(language: Language = "ja") -> str:
    if language == "en":
        return 'Which city would you like the weather for? For example, "weather in Osaka".'
    return "どこの天気をお調べしますか？「大阪の天気は？」のように地名を教えてください。"


def started_reply(tool: str, language: Language = "ja") -> str:
    if language == "en":
        return f"I've started {_STARTED_EN.get(tool, 'working on it')}. I'll let you know when it's done."
    return f"{_STARTED_JA.get(tool, '処理')}を開始しました。{_STARTED_TAIL}"


def cancelled_reply(tool: str, language: Language = "ja") -> str:
    """A call stopped on request (the page, the API or the cancel tool)."""
    if language == "en":
        return f"I've stopped {_STARTED_EN.get(tool, 'that')}."
    return f"{_STARTED_JA.get(tool, '処理')}を中止しました。"


def cancel_tool_reply(result: dict, language: Language = "ja") -> str:
    """The cancel tool's answer: what it stopped, or that nothing was running."""
    if result.get("cancelled"):
        return "Stopping it." if language == "en" else "中止します。"
    return "Nothing is running right now." if language == "en" else "いま実行中の処理はありません。"


def voice_not_transcribed_reply(reason: str = "", language: Language = "ja") -> str:
    """A voice turn that could not be transcribed; `reason` (Japanese) says why recognition is unavailable."""
    if language == "en":
        return "I received your voice, but speech recognition is not available. Please type your question."
    return f"音声を受け取りましたが、音声認識が使えないため内容は分かりません。{reason}テキストで入力してください。"


def model_unreachable_reply(language: Language = "ja") -> str:
    """The local language model stopped answering: the rule-based assistant answers instead."""
    if language == "en":
        return "I can't reach the local language model, so the rule-based assistant will answer for now."
    return "ローカルの言語モデルに接続できないため、しばらくルールベースの応答に切り替えます。"


def model_said_nothing_reply(language: Language = "ja") -> str:
    """The local model's answer held no words to say (only hidden thoughts, or nothing at all)."""
    if language == "en":
        return "Sorry, I couldn't put an answer into words. Could you say it another way?"
    return "すみません、うまく答えられませんでした。別の言い方でもう一度お願いします。"
