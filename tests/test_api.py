"""The app through `gradio_client`, as an API caller uses it."""

from __future__ import annotations

import logging
import warnings

import pytest
from conftest import ScriptedAssistant, call
from gradio_client import Client
from support.apphost import running_app
from support.openmeteo_server import serve_open_meteo

from offline.engine import Say


@pytest.fixture(scope="module")
def app():
    assistant = ScriptedAssistant({
        r"天気": lambda m: [call("get_weather", location="東京", day="today")],
        r"ゆっくり": lambda m: [Say("ゆっくり考えています。" * 3)],
    })
    with serve_open_meteo() as weather, pytest.MonkeyPatch.context() as env:
        env.setenv("OPEN_METEO_FORECAST_URL", weather.forecast_url)
        env.setenv("OPEN_METEO_GEOCODING_URL", weather.geocoding_url)
        with running_app("azure-ga", assistant) as running:
            yield running


def test_building_and_serving_the_app_warns_nothing():
    """No deprecation (or other) warning from our use of Gradio and fastrtc at start."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with running_app("azure-ga", ScriptedAssistant()):
            pass
    ours = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
            if issubclass(w.category, (DeprecationWarning, UserWarning))]
    assert not ours, ours


def test_view_api_lists_exactly_the_documented_endpoints(app):
    client = Client(app.url, verbose=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(endpoints) == {"/chat", "/tool_status", "/cancel_tool", "/reset", "/usage", "/export"}
    chat = endpoints["/chat"]
    assert [(p["parameter_name"], p["python_type"]["type"]) for p in chat["parameters"]] == [("message", "str")]
    assert endpoints["/chat"]["returns"][0]["python_type"]["type"] == "str"


def test_chat_streams_and_one_client_keeps_one_conversation(app):
    client = Client(app.url, verbose=False)
    job = client.submit("ゆっくり話して", api_name="/chat")
    final = job.result(timeout=30)
    assert final == "ゆっくり考えています。" * 3
    outputs = job.outputs()
    assert len(outputs) > 1, "the reply should stream as it grows"
    assert all(final.startswith(o) for o in outputs)
    assert client.predict("二回目", api_name="/chat") == "echo:二回目"
    # The second turn's response saw the first one: same service session, same context.
    context = app.assistant.contexts[-1]
    texts = [p.get("text", "") for i in context.items if i["type"] == "message" for p in i.get("content", [])]
    assert "ゆっくり話して" in texts and "二回目" in texts


def test_simultaneous_chats_on_one_client_each_get_their_own_answer(app):
    client = Client(app.url, verbose=False)
    questions = ["りんごが好きです", "みかんが好きです", "ぶどうが好きです", "ももが好きです"]
    jobs = [client.submit(q, api_name="/chat") for q in questions]
    assert [job.result(timeout=30) for job in jobs] == [f"echo:{q}" for q in questions]


@pytest.mark.parametrize("bad", ["", "   ", "あ" * 2001])
def test_bad_messages_get_a_clear_error_and_the_conversation_goes_on(app, bad, caplog, capfd):
    caplog.set_level(logging.INFO)
    client = Client(app.url, verbose=False)
    with pytest.raises(Exception) as caught:
        client.predict(bad, api_name="/chat")
    assert "メッセージ" in str(caught.value)
    assert "Traceback" not in str(caught.value)
    # The server log: one line for the rejected message, no traceback.
    rejections = [r for r in caplog.records if r.name == "web.api"]
    assert len(rejections) == 1 and rejections[0].exc_info is None, rejections
    assert "Traceback" not in capfd.readouterr().err
    assert client.predict("まだ大丈夫？", api_name="/chat") == "echo:まだ大丈夫？"


def test_tool_status_and_reset(app):
    client = Client(app.url, verbose=False)
    reply = client.predict("天気は？", api_name="/chat")
    assert reply.startswith("result:") and "東京" in reply  # the model got the forecast and answered from it
    rows = client.predict(api_name="/tool_status")
    assert len(rows) == 1
    _started, name, arguments, status, elapsed, summary = rows[0]
    assert (name, status) == ("get_weather", "完了")
    assert "東京" in summary and "℃" in summary
    assert "東京" in arguments and float(elapsed) >= 0
    assert client.predict(api_name="/reset") == "新しい会話を開始しました。"
    assert client.predict(api_name="/tool_status") == []
    assert client.predict("リセット後", api_name="/chat") == "echo:リセット後"
