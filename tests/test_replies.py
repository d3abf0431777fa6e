"""Sentences produced by the offline engine's reply helpers."""

from __future__ import annotations

import pytest

from offline import replies

WEATHER = {
    "place": "大阪",
    "date": "2026-11-26",
    "day": "tomorrow",
    "weather": "晴れ",
    "weather_code": 1,
    "temperature_max": 15.2,
    "temperature_min": 7.1,
    "precipitation_probability": 10,
    "current": None,
    "source": "Open-Meteo",
}

HITS = [
    {
        "title": "人工知能の歴史",
        "snippet": "…人工知能（「AI」）の研究は1950年代に始まり、"
        "ダートマス会議で「AI」という言葉が生まれました。"
        "その後、二度の冬の時代を経て、深層学習の登場で再び注目を集めています。現在は…",
        "tags": ["AI", "歴史"],
        "date": "2024-01-01",
        "source": "builtin",
        "score": 1.0,
    },
    {"title": "機械学習入門", "snippet": "機械学習は…", "tags": [], "date": "", "source": "", "score": 0.8},
    {"title": "AIと倫理", "snippet": "", "tags": [], "date": "", "source": "", "score": 0.5},
]
SEARCH = {"query": "AI", "total": 3, "query_ms": 1.2, "hits": HITS}


def test_weather_full_sentence() -> None:
    assert replies.describe_weather(WEATHER) == (
        "明日の大阪は晴れ、最高気温は15度、最低気温は7度、降水確率は10パーセントです。"
    )


def test_weather_today_with_current_and_negatives() -> None:
    result = {
        **WEATHER,
        "place": "札幌",
        "day": "today",
        "weather": "小雪",
        "temperature_max": -0.4,
        "temperature_min": -3.5,
        "precipitation_probability": None,
        "current": {"temperature": -2.6, "weather": "小雪", "wind_speed": 3.0, "time": "2026-11-25T09:00"},
    }
    assert replies.describe_weather(result) == (
        "今日の札幌は小雪、最高気温は0度、最低気温はマイナス4度です。今の気温はマイナス3度です。"
    )


def test_weather_missing_fields() -> None:
    no_weather = {**WEATHER, "weather": "不明", "weather_code": None, "precipitation_probability": None}
    assert replies.describe_weather(no_weather) == "明日の大阪の最高気温は15度、最低気温は7度です。"
    only_weather = {**WEATHER, "day": "day_after_tomorrow", "temperature_max": None, "temperature_min": None,
                    "precipitation_probability": None, "current": {"temperature": None}}
    assert replies.describe_weather(only_weather) == "明後日の大阪は晴れです。"
    nothing = {**only_weather, "weather": None}
    assert replies.describe_weather(nothing) == "明後日の大阪の天気の詳しい情報は取得できませんでした。"
    assert "。" in replies.describe_weather({})


def test_weather_explicit_date() -> None:
    text = replies.describe_weather({**WEATHER, "day": "date", "date": "2026-12-03"})
    assert text.startswith("12月3日の大阪は晴れ、")


def test_weather_english() -> None:
    text = replies.describe_weather({**WEATHER, "place": "Osaka", "current": {"temperature": -1.6}}, "en")
    assert text == (
        "Tomorrow in Osaka: mostly clear, a high of 15 degrees, a low of 7 degrees, "
        "a 10 percent chance of rain. It is minus 2 degrees right now."
    )


def test_search_sentence() -> None:
    text = replies.describe_search(SEARCH)
    assert text == (
        "「AI」の検索結果は3件です。いちばん関連が高いのは「人工知能の歴史」で、"
        "人工知能（AI）の研究は1950年代に始まり、ダートマス会議でAIという言葉が生まれました。"
        "ほかに「機械学習入門」「AIと倫理」があります。"
    )


def test_search_more_results_than_listed_and_single_hit() -> None:
    many = replies.describe_search({**SEARCH, "total": 12})
    assert many.endswith("「機械学習入門」「AIと倫理」などがあります。")
    one = replies.describe_search({"query": "AI", "total": 1, "hits": [HITS[2]]})
    assert one == "「AI」の検索結果は1件です。いちばん関連が高いのは「AIと倫理」です。"


def test_search_zero_hits() -> None:
    assert replies.describe_search({"query": "量子", "total": 0, "query_ms": 0.1, "hits": []}) == (
        "「量子」に関する記事は見つかりませんでした。"
    )
    assert replies.describe_search({"query": "qubit", "hits": []}, "en") == (
        'I couldn\'t find any articles about "qubit".'
    )


def test_search_english() -> None:
    result = {"query": "ML", "total": 2, "hits": [
        {"title": "Intro", "snippet": "**Machine learning** is a field of study in artificial intelligence "
         "concerned with the development of statistical algorithms that learn from data."},
        {"title": "Ethics", "snippet": ""},
    ]}
    text = replies.describe_search(result, "en")
    assert text.startswith('I found 2 results for "ML". The most relevant is "Intro": Machine learning is')
    assert text.endswith('… Others include "Ethics".')


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("…「機械学習」は…", "機械学習は"),
        ("## 見出し\n[リンク](http://x) と `code`", "見出し リンク と code"),
        ("あ" * 100, "あ" * 80 + "…"),
        ("う" * 30 + "。" + "い" * 100, "う" * 30 + "。"),  # ends on a whole sentence
        ("短い。" + "い" * 100, "短い。" + "い" * 77 + "…"),  # ...unless that would be too short
    ],
)
def test_clean_snippet(snippet: str, expected: str) -> None:
    assert replies.clean_snippet(snippet) == expected


def test_tool_failure() -> None:
    assert replies.describe_tool_failure("get_weather", "場所『ほげ』が見つかりませんでした") == (
        "申し訳ありません、天気情報の取得に失敗しました。場所『ほげ』が見つかりませんでした。"
    )
    assert replies.describe_tool_failure("search_database", "") == "申し訳ありません、検索に失敗しました。"
    assert replies.describe_tool_failure("get_weather", "timeout", "en") == (
        "Sorry, the weather lookup failed. timeout."
    )


def test_fixed_replies() -> None:
    assert replies.started_reply("search_database") == (
        "検索を開始しました。結果が出たらお知らせします。他に何かお手伝いできることはありますか？"
    )
    assert replies.voice_not_transcribed_reply() == (
        "音声を受け取りましたが、音声認識が使えないため内容は分かりません。テキストで入力してください。"
    )
    why = "音声認識モデル「small」をダウンロードできませんでした（ネットワークに接続できません）。"
    assert why + "テキストで入力" in replies.voice_not_transcribed_reply(why)
    assert "ルールベース" in replies.model_unreachable_reply()
    help_text = replies.help_reply()
    for word in ("オフライン", "ルールベース", "天気", "検索", "テキスト", "AZURE_OPENAI_ENDPOINT",
                 "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_DEPLOYMENT", ".env"):
        assert word in help_text
    assert "AZURE_OPENAI_DEPLOYMENT" in replies.help_reply("en")
    unknown = replies.unknown_reply("歌を歌って")
    assert "「歌を歌って」" in unknown and "ルールベース" in unknown and "AIについて調べて" in unknown
    assert "…" in replies.unknown_reply("あ" * 50)
    assert "どこ" in replies.ask_place_reply()


@pytest.mark.parametrize(
    "func",
    [replies.greeting_reply, replies.help_reply, replies.thanks_reply, replies.ask_place_reply,
     replies.voice_not_transcribed_reply, replies.unknown_reply, replies.model_unreachable_reply],
)
def test_english_variants_are_english(func) -> None:
    text = func(language="en")
    assert text.isascii() and text
    assert func() != text
