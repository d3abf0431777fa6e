"""Usage meter: totals are the sum of what the service reported, cost arithmetic, prices, latency medians."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import ScriptedAssistant, ToneVoice, call, eventually, settings_for
from gradio_client import Client
from support.apphost import running_app
from support.service import InstrumentedServer

from conversation.conversation import Conversation
from conversation.export import conversation_record
from conversation.prices import Prices, PriceTable, load_prices
from conversation.usage import CostStatus, TokenUsage, TurnKind, UsageMeter, meter_for
from offline.runtime import build_offline_server, serve_in_thread
from settings import RealtimeSettings, load_settings
from tools import Toolbox
from web.export import to_markdown

# Shaped like real `response.done.response.usage` payloads (GA), numbers chosen to make the arithmetic visible.
FIRST = {
    "total_tokens": 1300, "input_tokens": 1000, "output_tokens": 300,
    "input_token_details": {"text_tokens": 600, "audio_tokens": 400, "cached_tokens": 500, "image_tokens": 0,
                            "cached_tokens_details": {"text_tokens": 300, "audio_tokens": 200}},
    "output_token_details": {"text_tokens": 100, "audio_tokens": 200},
}
SECOND = {
    "total_tokens": 2050, "input_tokens": 1900, "output_tokens": 150,
    "input_token_details": {"text_tokens": 1000, "audio_tokens": 900, "cached_tokens": 1000},
    "output_token_details": {"text_tokens": 50, "audio_tokens": 100},
}
ROUND = Prices(text_in=1, cached_text_in=0.1, audio_in=10, cached_audio_in=0.5, text_out=2, audio_out=20)
TABLE = PriceTable({"test-model": ROUND}, as_of="2026-11-25", source="test")


def test_totals_are_the_sum_of_every_reported_response() -> None:
    meter = UsageMeter("test-model", TABLE)
    meter.on_response_done("resp_1", FIRST)
    meter.on_response_done("resp_2", SECOND)
    totals = meter.summary()["totals"]
    assert totals["responses"] == 2
    assert totals["input_tokens"] == 2900
    assert totals["output_tokens"] == 450
    assert totals["total_tokens"] == 3350
    assert totals["cached_tokens"] == 1500
    assert totals["input_audio_tokens"] == 1300
    assert totals["output_audio_tokens"] == 300
    assert [r["response_id"] for r in meter.summary()["responses"]] == ["resp_1", "resp_2"]


def test_a_response_reported_twice_counts_once() -> None:
    meter = UsageMeter("test-model", TABLE)
    meter.on_response_done("resp_1", FIRST)
    assert meter.on_response_done("resp_1", FIRST) is None
    assert meter.totals.input_tokens == 1000


def test_cost_prices_each_modality_and_the_cache_separately() -> None:
    tokens = TokenUsage.from_reported(FIRST)
    # text in: 300 uncached × 1 + 300 cached × 0.1; audio in: 200 × 10 + 200 × 0.5; out: 100 × 2 + 200 × 20
    expected = (300 * 1 + 300 * 0.1 + 200 * 10 + 200 * 0.5 + 100 * 2 + 200 * 20) / 1_000_000
    assert tokens.cost(ROUND) == pytest.approx(expected)
    meter = UsageMeter("test-model", TABLE)
    meter.on_response_done("resp_1", FIRST)
    meter.on_response_done("resp_2", SECOND)
    assert meter.summary()["totals"]["cost_usd"] == pytest.approx(
        expected + TokenUsage.from_reported(SECOND).cost(ROUND), abs=1e-6)
    assert meter.summary()["cost_status"] == CostStatus.ESTIMATED


def test_cache_without_a_breakdown_is_split_like_the_input() -> None:
    tokens = TokenUsage.from_reported(SECOND)  # 1000 text + 900 audio, 1000 cached
    assert (tokens.cached_text_tokens, tokens.cached_audio_tokens) == (526, 474)


def test_unknown_model_counts_tokens_and_says_cost_unknown() -> None:
    meter = UsageMeter("my-azure-deployment", TABLE)
    meter.on_response_done("resp_1", FIRST)
    summary = meter.summary()
    assert summary["totals"]["input_tokens"] == 1000
    assert summary["totals"]["cost_usd"] is None
    assert summary["responses"][0]["cost_usd"] is None
    assert summary["cost_status"] == CostStatus.UNKNOWN_MODEL


def test_partial_and_malformed_usage_is_tolerated() -> None:
    meter = UsageMeter("test-model", TABLE)
    meter.on_response_done("resp_1", {"input_tokens": 40, "output_tokens": 10})
    meter.on_response_done("resp_2", {"input_tokens": "many", "output_token_details": None, "total_tokens": -3})
    meter.on_response_done("resp_3", None)
    meter.on_response_done("resp_4", {"input_tokens": 5, "input_token_details": {"cached_tokens": 99}})
    totals = meter.summary()["totals"]
    assert totals["responses"] == 3
    assert (totals["input_tokens"], totals["output_tokens"], totals["total_tokens"]) == (45, 10, 55)
    assert totals["cached_tokens"] == 5  # never more cached than there was input
    # With no breakdown everything is priced as text.
    assert totals["cost_usd"] == pytest.approx((40 * 1 + 10 * 2 + 5 * 0.1) / 1_000_000, abs=1e-6)


def test_default_prices_know_the_realtime_models_and_their_snapshots() -> None:
    table = load_prices()
    assert table.as_of
    for model in ("gpt-realtime", "gpt-realtime-mini", "gpt-4o-realtime-preview", "gpt-4o-mini-realtime-preview"):
        assert table.lookup(model) is not None, model
    assert table.lookup("gpt-realtime-mini-2025-10-06")[0] == "gpt-realtime-mini"
    assert table.lookup("gpt-realtime-2025-08-28")[0] == "gpt-realtime"
    assert table.lookup("gpt-4o-realtime-preview-2024-12-17")[0] == "gpt-4o-realtime-preview"
    assert table.lookup("GPT-Realtime")[0] == "gpt-realtime"
    assert table.lookup("whisper-1") is None
    price = table.lookup("gpt-realtime")[1]
    assert price.audio_out > price.audio_in > price.text_out > price.text_in > price.cached_text_in


def test_prices_file_overrides_and_a_bad_file_keeps_the_defaults(tmp_path) -> None:
    good = tmp_path / "prices.json"
    good.write_text(json.dumps({"as_of": "2030-01-01", "models": {"my-deploy": {
        "text_in": 1, "cached_text_in": 0.1, "audio_in": 10, "cached_audio_in": 0.5, "text_out": 2, "audio_out": 20}}}))
    table = load_prices(str(good))
    assert table.lookup("my-deploy")[1] == ROUND
    assert table.lookup("gpt-realtime") is not None and table.as_of == "2030-01-01"
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": {"x": {"text_in": "cheap"}}}')
    fallback = load_prices(str(bad))
    assert fallback.lookup("gpt-realtime") is not None and "料金ファイル" in fallback.problem
    missing = load_prices(str(tmp_path / "none.json"))
    assert missing.problem and missing.lookup("gpt-realtime") is not None


def test_price_model_names_the_row_for_an_azure_deployment() -> None:
    meter = meter_for(RealtimeSettings(provider="azure", model="voice-prod", price_model="gpt-realtime-mini"))
    meter.on_response_done("resp_1", FIRST)
    assert meter.summary()["price_model"] == "gpt-realtime-mini"
    assert meter.summary()["totals"]["cost_usd"] > 0


def test_offline_reports_tokens_and_timings_but_no_cost() -> None:
    meter = meter_for(RealtimeSettings(provider="offline", model="offline-assistant"))
    meter.on_response_done("resp_1", FIRST)
    meter.turn_started("t1", TurnKind.TYPED, at=10.0)
    meter.first_output("t1", at=10.25)
    summary = meter.summary()
    assert summary["cost_status"] == CostStatus.NOT_BILLED and summary["totals"]["cost_usd"] is None
    assert summary["latency"]["typed_median_seconds"] == 0.25


def test_latency_medians_per_kind_and_per_tool() -> None:
    meter = UsageMeter("test-model", TABLE)
    for turn_id, start, end in (("a", 0.0, 0.5), ("b", 10.0, 10.9), ("c", 20.0, 20.7)):
        meter.turn_started(turn_id, TurnKind.VOICE, at=start)
        meter.first_output_of(TurnKind.VOICE, at=end)
        meter.first_output_of(TurnKind.VOICE, at=end + 5)  # later audio of the same answer is not a new turn
    meter.turn_started("typed", TurnKind.TYPED, at=30.0)
    assert meter.first_output("typed", at=30.4).seconds == pytest.approx(0.4)
    assert meter.first_output("typed", at=31.0) is None
    tools = [("get_weather", 0.3), ("get_weather", 0.5), ("search_database", 20.0)]
    latency = meter.summary(tools)["latency"]
    assert (latency["voice_median_seconds"], latency["voice_turns"]) == (0.7, 3)
    assert (latency["typed_median_seconds"], latency["typed_turns"]) == (0.4, 1)
    assert latency["tools"]["get_weather"] == {"median_seconds": 0.4, "calls": 2}
    assert latency["tool_median_seconds"] == 0.5 and latency["tool_calls"] == 3


def test_speech_that_got_no_answer_does_not_stretch_the_next_turn() -> None:
    meter = UsageMeter("test-model", TABLE)
    meter.turn_started("noise", TurnKind.VOICE, at=0.0)
    meter.turn_started("speech", TurnKind.VOICE, at=60.0)
    assert [t.turn_id for t in meter.first_output_of(TurnKind.VOICE, at=60.8)] == ["speech"]
    assert meter.summary()["latency"]["voice_median_seconds"] == 0.8


def test_empty_meter_summary_is_well_formed() -> None:
    summary = UsageMeter("gpt-realtime", load_prices()).summary()
    assert summary["totals"]["input_tokens"] == 0 and summary["totals"]["cost_usd"] == 0
    assert summary["latency"]["voice_median_seconds"] is None
    json.dumps(summary)


# ---- the meter inside a conversation, against the local Realtime server over a real socket ----------------------


def reported(server) -> list[dict]:
    """The `response` of every response.done the server sent, in order."""
    return [event["response"] for connection in server.connections for event in connection.sent_of_type(
        "response.done")]


async def open_conversation(server, flavour: str) -> Conversation:
    tools = Toolbox.from_settings(replace(load_settings(), search_latency=0.0))  # the search answers at once
    conversation = Conversation(settings_for(server, flavour), tools=tools)
    conversation.start()
    assert await conversation.wait_connected(5), conversation.notice
    return conversation


@pytest.mark.parametrize("flavour", ["openai", "azure-ga", "azure-preview"])
async def test_conversation_totals_equal_the_sum_the_server_reported(server, assistant, flavour):
    assistant.rules = {r"調べて": lambda m: [call("search_database", query="AI")]}
    conversation = await open_conversation(server, flavour)
    try:
        for text in ("こんにちは", "AIについて調べて", "ありがとう"):
            turn = await conversation.send_text(text)
            await eventually(turn.done.is_set, 15)
        await eventually(lambda: len(conversation.usage.responses) == len(reported(server)))
        summary = conversation.usage_summary()
        responses = reported(server)
        assert len(responses) >= 4  # three answers and the search result told
        assert [r["response_id"] for r in summary["responses"]] == [r["id"] for r in responses]
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            assert summary["totals"][key] == sum(r["usage"][key] for r in responses) > 0, key
        assert summary["totals"]["cached_tokens"] == sum(
            r["usage"]["input_token_details"]["cached_tokens"] for r in responses) > 0
        latency = summary["latency"]
        assert latency["typed_turns"] == 3 and 0 < latency["typed_median_seconds"] < 5
        assert latency["tools"]["search_database"]["calls"] == 1
        if flavour == "openai":  # a model in the price table
            assert summary["cost_status"] == "estimated" and summary["totals"]["cost_usd"] > 0
        else:  # an Azure deployment name the table does not know
            assert summary["cost_status"] == "unknown_model" and summary["totals"]["cost_usd"] is None
        record = conversation_record(conversation.transcript.items, conversation.tools.calls.values(), summary)
        assert [e["text"] for e in record["transcript"] if e.get("role") == "user"] == [
            "こんにちは", "AIについて調べて", "ありがとう"]
        assert record["tool_calls"][0]["name"] == "search_database"
        assert record["tool_calls"][0]["result"]["status"] == "completed"
        assert "## 使用量と料金" in to_markdown(record)
    finally:
        await conversation.close()


async def test_voice_turn_latency_is_end_of_speech_to_first_audio(server):
    conversation = await open_conversation(server, "azure-ga")
    conversation.voice_attached = True
    try:
        speech = ToneVoice.tone("あいうえおかきくけこ")
        for chunk in np.array_split(np.concatenate([speech, np.zeros(24000, np.int16)]), 40):
            await conversation.append_audio(chunk)
        await eventually(lambda: conversation.usage.turns and conversation.usage.responses)
        summary = conversation.usage_summary()
        assert summary["latency"]["voice_turns"] == 1
        assert 0 < summary["latency"]["voice_median_seconds"] < 5
        heard = reported(server)[0]["usage"]
        assert summary["totals"]["input_audio_tokens"] == heard["input_token_details"]["audio_tokens"] > 0
        assert summary["totals"]["output_audio_tokens"] == heard["output_token_details"]["audio_tokens"] > 0
    finally:
        await conversation.close()


# ---- through the app: /usage and /export for gradio_client callers ------------------------------------------------


def test_usage_and_export_through_the_api():
    with running_app("openai", ScriptedAssistant()) as app:
        client = Client(app.url, verbose=False)
        empty = client.predict(api_name="/usage")
        assert empty["totals"]["responses"] == 0 and empty["cost_status"] == "estimated"
        assert client.predict("こんにちは", api_name="/chat") == "echo:こんにちは"
        assert client.predict("もう一度", api_name="/chat") == "echo:もう一度"
        usage = client.predict(api_name="/usage")
        responses = reported(app.server)
        assert [r["response_id"] for r in usage["responses"]] == [r["id"] for r in responses]
        assert usage["totals"]["input_tokens"] == sum(r["usage"]["input_tokens"] for r in responses) > 0
        assert usage["totals"]["output_tokens"] == sum(r["usage"]["output_tokens"] for r in responses) > 0
        assert usage["totals"]["cost_usd"] > 0 and usage["latency"]["typed_turns"] == 2
        markdown = client.predict("markdown", api_name="/export")
        assert "**ユーザー:** こんにちは" in markdown and "**アシスタント:** echo:もう一度" in markdown
        record = json.loads(client.predict("json", api_name="/export"))
        assert [e["text"] for e in record["transcript"]] == ["こんにちは", "echo:こんにちは", "もう一度",
                                                              "echo:もう一度"]
        assert record["usage"]["totals"]["input_tokens"] == usage["totals"]["input_tokens"]
        with pytest.raises(Exception, match="形式は json か markdown"):
            client.predict("pdf", api_name="/export")


def test_offline_mode_reports_tokens_and_timings_with_no_cost():
    # the built-in engine and rule-based assistant, as offline mode runs them (recording what the app sent)
    engine = build_offline_server(server_class=InstrumentedServer)
    settings = RealtimeSettings(provider="offline", model="offline-assistant", api_key="offline",
                                base_url=f"{serve_in_thread(engine)}/v1")
    with running_app(settings=settings) as app:
        client = Client(app.url, verbose=False)
        assert client.predict("こんにちは", api_name="/chat")
        usage = client.predict(api_name="/usage")
        responses = reported(engine)
        assert usage["cost_status"] == "not_billed" and usage["totals"]["cost_usd"] is None
        assert usage["totals"]["input_tokens"] == sum(r["usage"]["input_tokens"] for r in responses) > 0
        assert usage["latency"]["typed_turns"] == 1 and usage["latency"]["typed_median_seconds"] > 0
        assert "料金なし（オフラインモード）" in client.predict("markdown", api_name="/export")
