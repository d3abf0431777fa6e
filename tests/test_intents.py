"""Table tests for the offline engine's deterministic intent router."""

from __future__ import annotations

import pytest

from offline.intents import Intent, normalize, route

W = "weather"
S = "search"

CASES: list[tuple[str, str, dict[str, str]]] = [
    # --- weather, Japanese
    ("明日の大阪の天気は？", W, {"location": "大阪", "day": "tomorrow"}),
    ("東京の天気は？", W, {"location": "東京", "day": "today"}),
    ("札幌の今日の天気はどう？", W, {"location": "札幌", "day": "today"}),
    ("明後日、福岡は雨が降りますか", W, {"location": "福岡", "day": "day_after_tomorrow"}),
    ("京都って明日晴れる？", W, {"location": "京都", "day": "tomorrow"}),
    ("大阪府の天気を教えて", W, {"location": "大阪府", "day": "today"}),
    ("本日の名古屋の天気", W, {"location": "名古屋", "day": "today"}),
    ("あさっての那覇の天気を教えてください。", W, {"location": "那覇", "day": "day_after_tomorrow"}),
    ("あしたの仙台は雪？", W, {"location": "仙台", "day": "tomorrow"}),
    ("明日、横浜で傘いる？", W, {"location": "横浜", "day": "tomorrow"}),
    ("今日の東京の最高気温は？", W, {"location": "東京", "day": "today"}),
    ("ねえ、神戸の明日の天気教えて", W, {"location": "神戸", "day": "tomorrow"}),
    ("ありがとう、明日の広島の天気は？", W, {"location": "広島", "day": "tomorrow"}),
    ("東京の天気について教えて", W, {"location": "東京", "day": "today"}),
    ("ＮＹの天気は？", W, {"location": "NY", "day": "today"}),
    ("金沢周辺の天気", W, {"location": "金沢", "day": "today"}),
    # weather without a place: the engine asks where
    ("今日の天気は？", W, {"day": "today"}),
    ("明日は晴れますか", W, {"day": "tomorrow"}),
    ("天気を教えて", W, {"day": "today"}),
    ("今日はどんな天気？", W, {"day": "today"}),
    # --- weather, English
    ("What's the weather in Tokyo tomorrow?", W, {"location": "Tokyo", "day": "tomorrow"}),
    ("weather in osaka", W, {"location": "Osaka", "day": "today"}),
    ("Will it rain in Sapporo today?", W, {"location": "Sapporo", "day": "today"}),
    ("Is it sunny in Kyoto the day after tomorrow?", W, {"location": "Kyoto", "day": "day_after_tomorrow"}),
    ("What's the weather like in New York?", W, {"location": "New York", "day": "today"}),
    ("weather forecast for Fukuoka tomorrow please", W, {"location": "Fukuoka", "day": "tomorrow"}),
    ("Tokyo weather", W, {"location": "Tokyo", "day": "today"}),
    ("What's the weather for tomorrow?", W, {"day": "tomorrow"}),
    ("How's the weather?", W, {"day": "today"}),
    # --- search, Japanese
    ("AIについて調べて", S, {"query": "AI"}),
    ("機械学習の情報を検索して", S, {"query": "機械学習"}),
    ("データサイエンスについて教えて", S, {"query": "データサイエンス"}),
    ("音声認識を調べてください", S, {"query": "音声認識"}),
    ("ディープラーニングについて知りたい", S, {"query": "ディープラーニング"}),
    ("自然言語処理って何？", S, {"query": "自然言語処理"}),
    ("強化学習とは", S, {"query": "強化学習"}),
    ("クラウドについて詳しく教えて", S, {"query": "クラウド"}),
    ("こんにちは、量子コンピュータについて調べて", S, {"query": "量子コンピュータ"}),
    ("検索 ベクトルデータベース", S, {"query": "ベクトルデータベース"}),
    ("雨について調べて", S, {"query": "雨"}),  # weak weather word phrased as a search
    ("Pythonの使い方を調べて", S, {"query": "Pythonの使い方"}),
    # --- search, English
    ("search for machine learning", S, {"query": "machine learning"}),
    ("Tell me about deep learning", S, {"query": "deep learning"}),
    ("look up speech recognition", S, {"query": "speech recognition"}),
    ("What is reinforcement learning?", S, {"query": "reinforcement learning"}),
    ("Can you tell me about the history of AI?", S, {"query": "history of AI"}),
    ("Tell me about rain", S, {"query": "rain"}),
    # --- mixed scripts
    ("weather in 大阪", W, {"location": "大阪", "day": "today"}),
    ("Tokyoの明日の天気", W, {"location": "Tokyo", "day": "tomorrow"}),
    ("machine learningについて調べて", S, {"query": "machine learning"}),
    # --- greeting
    ("こんにちは", "greeting", {}),
    ("おはようございます", "greeting", {}),
    ("おはよう", "greeting", {}),
    ("こんばんは！", "greeting", {}),
    ("はじめまして", "greeting", {}),
    ("もしもし", "greeting", {}),
    ("hello", "greeting", {}),
    ("Hi there!", "greeting", {}),
    ("Good morning", "greeting", {}),
    # --- help
    ("何ができますか", "help", {}),
    ("何ができるの？", "help", {}),
    ("使い方を教えて", "help", {}),
    ("ヘルプ", "help", {}),
    ("help", "help", {}),
    ("What can you do?", "help", {}),
    # --- thanks
    ("ありがとう", "thanks", {}),
    ("ありがとうございます！", "thanks", {}),
    ("どうも", "thanks", {}),
    ("thanks", "thanks", {}),
    ("Thank you!", "thanks", {}),
    # --- unknown
    ("今日は何の日", "unknown", {}),
    ("歌を歌って", "unknown", {}),
    ("hmm", "unknown", {}),
    ("history", "unknown", {}),
    ("", "unknown", {}),
    ("。。。", "unknown", {}),
    # --- cancelling running tools
    ("やっぱり検索はやめて", "cancel", {"tool": "search_database"}),
    ("調べるのを中止して", "cancel", {"tool": "search_database"}),
    ("全部キャンセルして", "cancel", {"tool": ""}),
    ("cancel the search", "cancel", {"tool": "search_database"}),
    ("stop", "cancel", {"tool": ""}),
]


@pytest.mark.parametrize(("text", "kind", "arguments"), CASES)
def test_route_table(text: str, kind: str, arguments: dict[str, str]) -> None:
    intent = route(text)
    assert (intent.kind, intent.arguments) == (kind, arguments)


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert sum(1 for _, kind, _ in CASES if kind in (W, S)) >= 30


@pytest.mark.parametrize(
    ("text", "language"),
    [("東京の天気は？", "ja"), ("AIについて調べて", "ja"), ("weather in osaka", "en"), ("hello", "en")],
)
def test_language(text: str, language: str) -> None:
    assert route(text).language == language


def test_tool_names() -> None:
    assert route("東京の天気は？").tool == "get_weather"
    assert route("AIについて調べて").tool == "search_database"
    assert route("こんにちは").tool is None
    assert route("やっぱり検索はやめて").tool == "cancel_tool"


def test_intent_is_frozen() -> None:
    intent = route("こんにちは")
    assert isinstance(intent, Intent)
    with pytest.raises(AttributeError):
        intent.kind = "help"  # type: ignore[misc]


def test_normalize() -> None:
    assert normalize("  ＡＩについて調べて。 ") == "AIについて調べて"
    assert normalize("What's up?!") == "What's up"


def test_full_width_and_case_insensitive() -> None:
    assert route("ＷＥＡＴＨＥＲ ＩＮ ＯＳＡＫＡ").arguments == {"location": "OSAKA", "day": "today"}
    assert route("ＡＩについて調べて").arguments == {"query": "AI"}
