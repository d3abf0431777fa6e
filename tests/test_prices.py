"""The price table's current models: each dated and sourced, gpt-realtime-2 priced as published, and a newer
model that is not in the table shown as cost unknown rather than priced as an older one."""

from __future__ import annotations

import json

import pytest

from conversation.prices import DEFAULT_PRICES_PATH, load_prices
from conversation.usage import CostStatus, meter_for
from settings import RealtimeSettings
from web.export import usage_line

CURRENT = ("gpt-realtime", "gpt-realtime-1.5", "gpt-realtime-2", "gpt-realtime-mini", "gpt-4o-realtime-preview",
           "gpt-4o-mini-realtime-preview")
# A response.done usage of gpt-realtime-2 (GA shape): 300 text and 200 audio tokens in, half of each cached.
USAGE = {
    "total_tokens": 1300, "input_tokens": 1000, "output_tokens": 300,
    "input_token_details": {"text_tokens": 600, "audio_tokens": 400, "cached_tokens": 500,
                            "cached_tokens_details": {"text_tokens": 300, "audio_tokens": 200}},
    "output_token_details": {"text_tokens": 100, "audio_tokens": 200},
}


def test_every_current_model_has_its_prices_date_and_source():
    raw = json.loads(DEFAULT_PRICES_PATH.read_text(encoding="utf-8"))["models"]
    table = load_prices()
    for model in CURRENT:
        assert model in raw, model
        as_of, source = table.as_of_and_source(model)
        assert raw[model]["as_of"] == as_of and len(as_of) == 10 and model in source


def test_the_usage_line_prices_gpt_realtime_2_as_published():
    meter = meter_for(RealtimeSettings(provider="openai", model="gpt-realtime-2"))
    meter.on_response_done("resp_1", USAGE)
    summary = meter.summary()
    # $ per 1M: text in 4 (cached 0.40), audio in 32 (cached 0.40), text out 24, audio out 64.
    expected = (300 * 4 + 300 * 0.40 + 200 * 32 + 200 * 0.40 + 100 * 24 + 200 * 64) / 1_000_000
    assert summary["totals"]["cost_usd"] == pytest.approx(expected)  # 0.023
    assert summary["price_model"] == "gpt-realtime-2" and "gpt-realtime-2" in summary["prices_source"]
    assert "約 $0.0230（推定）" in usage_line(summary)
    snapshot = meter_for(RealtimeSettings(provider="openai", model="gpt-realtime-2-2026-05-07"))
    snapshot.on_response_done("resp_1", USAGE)
    assert snapshot.summary()["totals"]["cost_usd"] == pytest.approx(expected)


@pytest.mark.parametrize("model", ["gpt-realtime-2.1", "gpt-realtime-2.1-mini"])
def test_a_model_missing_from_the_table_is_cost_unknown_not_an_older_models_price(model):
    meter = meter_for(RealtimeSettings(provider="openai", model=model))
    meter.on_response_done("resp_1", USAGE)
    assert meter.cost_status == CostStatus.UNKNOWN_MODEL
    assert "料金不明" in usage_line(meter.summary())
