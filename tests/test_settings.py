"""Settings read once from a mapping, and the tool context and toolbox the app builds from them."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from conversation.tool_runner import CallStatus, ToolCall, ToolRunner
from settings import Settings, load_settings
from tools import Toolbox, ToolContext, ToolRegistry, plain_summary, registry

AZURE = {"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com/", "AZURE_OPENAI_API_KEY": "azure-secret",
         "AZURE_OPENAI_DEPLOYMENT": "voice"}


def test_nothing_set_means_the_defaults_and_offline():
    settings = load_settings({})
    assert settings.realtime.provider == "offline"
    assert (settings.tool_timeout, settings.search_latency, settings.max_voice_sessions) == (60.0, 20.0, 4)
    assert (settings.host, settings.port, settings.login) == ("127.0.0.1", 7860, None)
    assert settings.forecast_url is None and settings.search_db_path == Settings().search_db_path


@pytest.mark.parametrize(("value", "expected"), [("30", 30.0), (" 2.5 ", 2.5), ("", 60.0), ("   ", 60.0)])
def test_numbers_are_parsed_and_empty_means_unset(value, expected, caplog):
    assert load_settings({"TOOL_TIMEOUT_SECONDS": value}).tool_timeout == expected
    assert not caplog.records


@pytest.mark.parametrize(("name", "value", "field", "default"), [
    ("TOOL_TIMEOUT_SECONDS", "六十", "tool_timeout", 60.0),
    ("TOOL_TIMEOUT_SECONDS", "0", "tool_timeout", 60.0),  # a call must get some time
    ("SEARCH_LATENCY_SECONDS", "-1", "search_latency", 20.0),
    ("SEARCH_LATENCY_SECONDS", "nan", "search_latency", 20.0),
    ("MAX_VOICE_SESSIONS", "many", "max_voice_sessions", 4),
    ("GRADIO_SERVER_PORT", "70000", "port", 7860),
])
def test_a_bad_number_is_one_clear_warning_and_the_default(name, value, field, default, caplog):
    caplog.set_level(logging.WARNING, logger="settings")
    assert getattr(load_settings({name: value}), field) == default
    (record,) = caplog.records
    message = record.getMessage()
    assert name in message and value in message and "既定値" in message and "using" in message


def test_a_bad_vad_threshold_keeps_the_voice_default(caplog):
    assert load_settings({"VAD_THRESHOLD": "1.5"}).realtime.voice.vad_threshold == 0.6
    assert "0〜1" in caplog.text


def test_provider_choice_and_dialect():
    assert load_settings(AZURE).realtime.provider == "azure"
    assert load_settings({**AZURE, "AZURE_OPENAI_API_VERSION": "2025-04-01-preview"}).realtime.dialect == "preview"
    assert load_settings({"OPENAI_API_KEY": "k"}).realtime.model == "gpt-realtime"
    assert load_settings({**AZURE, "REALTIME_PROVIDER": "OpenAI"}).realtime.provider == "openai"


def test_login_needs_both_names_and_secrets_stay_out_of_repr():
    assert load_settings({"APP_USERNAME": "user"}).login is None
    settings = load_settings({**AZURE, "APP_USERNAME": "user", "APP_PASSWORD": "pass-secret", "HF_TOKEN": "hf_secret",
                              "TWILIO_AUTH_TOKEN": "twilio-secret"})
    assert settings.login == ("user", "pass-secret")
    assert not any(secret in repr(settings) for secret in ("azure-secret", "pass-secret", "hf_secret", "twilio-secret"))


def test_a_space_listens_everywhere_unless_told_otherwise():
    assert load_settings({"SPACE_ID": "me/app"}).host == "0.0.0.0"
    assert load_settings({"SPACE_ID": "me/app", "GRADIO_SERVER_NAME": "127.0.0.1"}).host == "127.0.0.1"


def test_the_toolbox_is_built_from_the_settings(tmp_path: Path):
    settings = load_settings({"OPEN_METEO_FORECAST_URL": "http://127.0.0.1:9/f", "SEARCH_LATENCY_SECONDS": "0.5",
                              "SEARCH_DB_PATH": str(tmp_path / "kb.sqlite3"), "TOOL_TIMEOUT_SECONDS": "12"})
    toolbox = Toolbox.from_settings(settings)
    assert toolbox.registry is registry and toolbox.timeout == 12.0
    assert toolbox.context.weather.forecast_url == "http://127.0.0.1:9/f"
    assert toolbox.context.weather.geocoding_url.startswith("https://geocoding-api.open-meteo.com")
    assert toolbox.context.knowledge.db_path == tmp_path / "kb.sqlite3"
    assert toolbox.context.search_latency == 0.5


def test_the_model_never_sees_the_context_parameter():
    for name in ("get_weather", "search_database"):
        tool = registry.get(name)
        assert tool is not None and tool.context_parameter == "context"
        assert "context" not in tool.schema()["parameters"]["properties"]
        assert "context" not in tool.schema()["parameters"].get("required", [])
    assert registry.get("get_weather").schema()["parameters"]["required"] == ["location"]


def run_one(toolbox: Toolbox, name: str, arguments: dict) -> ToolCall:
    """Run one call through the real runner and return it once it ended."""

    async def go() -> ToolCall:
        ended = asyncio.Event()

        async def on_end(_call: ToolCall) -> None:
            ended.set()

        runner = ToolRunner(toolbox, lambda _call: None, on_end)
        call = runner.start("call_1", name, json.dumps(arguments), set())
        await asyncio.wait_for(ended.wait(), 5)
        return call

    return asyncio.run(go())


def test_a_tool_gets_the_apps_context_under_any_parameter_name(tmp_path: Path):
    tools = ToolRegistry()

    @tools.tool(summary=lambda result: f"{result['latency']}秒")
    async def peek(place: str, ctx: ToolContext) -> dict:
        """Shows what it was given."""
        return {"place": place, "latency": ctx.search_latency}

    toolbox = Toolbox.from_settings(load_settings({"SEARCH_LATENCY_SECONDS": "7",
                                                   "SEARCH_DB_PATH": str(tmp_path / "kb.sqlite3")}), tools)
    assert list(tools.get("peek").schema()["parameters"]["properties"]) == ["place"]
    call = run_one(toolbox, "peek", {"place": "東京"})
    assert call.status == CallStatus.DONE and call.summary == "7.0秒"
    assert json.loads(call.output)["result"] == {"place": "東京", "latency": 7.0}


def test_each_tool_summarises_its_own_result():
    weather = {"place": "東京", "date": "2026-11-25", "weather": "晴れ", "temperature_max": 15, "temperature_min": 7}
    assert registry.get("get_weather").summarize(weather) == "東京 2026-11-25 晴れ 15℃/7℃"
    assert registry.get("get_weather").summarize({**weather, "temperature_min": None}) == "東京 2026-11-25 晴れ"
    found = {"total": 5, "hits": [{"title": "機械学習"}, {"title": "深層学習"}, {"title": "強化学習"}]}
    assert registry.get("search_database").summarize(found) == "5件: 機械学習、深層学習"
    assert registry.get("search_database").summarize({"total": 0, "hits": []}) == "該当なし"
    sourced = {"total": 2, "hits": [{"title": "納期の目安", "source": "faq/納期.md"}, {"title": "申し込み"}]}
    assert registry.get("search_database").summarize(sourced) == "2件: 納期の目安（faq/納期.md）、申し込み"


def test_the_default_summary_is_the_text_cut_short_and_an_odd_result_falls_back_to_it():
    assert plain_summary("あ" * 100) == "あ" * 80
    assert plain_summary({"n": 1}) == '{"n": 1}'
    assert registry.get("search_database").summarize(["not", "a", "dict"]) == '["not", "a", "dict"]'
