"""Tools from real MCP servers through the app: mcp-server-time from PyPI, and a slow server of our own
(tests/support/mcp_slow_server.py) over stdio and over streamable HTTP, plus one configured server that cannot start."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ScriptedAssistant, call
from gradio_client import Client
from gradio_client.client import Job
from support.apphost import free_port, running_app

from mcp_tools import app_toolbox
from settings import Settings

SERVER = Path(__file__).parent / "support" / "mcp_slow_server.py"
TOKEN = "header-secret-for-the-test-only"
SLOW = {"stdio": "slow_slow_count", "http": "slowhttp_slow_count"}


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def events(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def wait_until(predicate, timeout: float, every: float = 0.1):
    """Poll a public output (the API, the server's own event file) until it holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


def assert_no_traceback(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    assert not [r.getMessage() for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in caplog.text and "Traceback" not in capfd.readouterr().err
    assert TOKEN not in caplog.text


@pytest.fixture(scope="module")
def mcp(tmp_path_factory):
    """The app with four configured MCP servers; the HTTP one runs in its own process on a free port."""
    root = tmp_path_factory.mktemp("mcp")
    stdio_events, http_events = root / "stdio.events", root / "http.events"
    port = free_port()
    http = subprocess.Popen([sys.executable, str(SERVER), "http", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "MCP_TEST_EVENTS": str(http_events)})
    config = root / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "time": {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "Asia/Tokyo"]},
        "slow": {"command": sys.executable, "args": [str(SERVER)], "env": {"MCP_TEST_EVENTS": "${SLOW_EVENTS}"}},
        "slowhttp": {"url": f"http://127.0.0.1:{port}/mcp", "headers": {"Authorization": "Bearer ${SLOW_TOKEN}"},
                     "background": True},
        "broken": {"command": str(root / "no-such-server")},
    }}), encoding="utf-8")
    assistant = ScriptedAssistant({
        r"今何時": lambda m: [call("time_get_current_time", timezone="Asia/Tokyo")],
        r"数えて(\w+) (\d+)": lambda m: [call(SLOW[m[1]], steps=int(m[2]), seconds_per_step=0.5)],
        r"やっぱり(\w+)はやめて": lambda m: [call("cancel_tool", tool=SLOW[m[1]])],
    })
    try:
        wait_for_port(port)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MCP_CONFIG", str(config))
            env.setenv("SLOW_EVENTS", str(stdio_events))
            env.setenv("SLOW_TOKEN", TOKEN)
            with running_app("azure-ga", assistant) as app:
                yield app, {"stdio": stdio_events, "http": http_events}
    finally:
        http.terminate()
        http.wait(10)


def test_the_time_servers_tool_result_is_told(mcp):
    app, _ = mcp
    reply = Client(app.url, verbose=False).predict("今何時？", api_name="/chat")
    assert reply.startswith("result:"), reply
    told = json.loads(reply.removeprefix("result:"))
    assert told["status"] == "completed"
    assert told["result"]["timezone"] == "Asia/Tokyo" and told["result"]["datetime"].endswith("+09:00")


def test_every_tool_is_offered_with_its_schema_and_clashing_names_are_prefixed(mcp):
    app, _ = mcp
    schemas = {t["name"]: t for t in app.registry.tools.schemas()}
    assert {"time_get_current_time", "slow_get_current_time", "slowhttp_get_current_time", "convert_time",
            "slow_slow_count", "slowhttp_slow_count", "get_weather", "search_database", "cancel_tool"} <= set(schemas)
    count = schemas["slow_slow_count"]
    assert count["parameters"]["required"] == ["steps"] and "progress" in count["description"]
    assert all(len(name) <= 64 and name.replace("_", "").replace("-", "").isalnum() for name in schemas)


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_progress_is_shown_live_while_the_slow_tool_runs(mcp, transport):
    app, files = mcp
    client = Client(app.url, verbose=False)
    job = client.submit(f"数えて{transport} 6", api_name="/chat")

    def running_with_progress():
        rows = client.predict(api_name="/tool_status")
        return rows and rows[0][3].startswith("実行中 ") and "/6" in rows[0][3] and rows[0]

    row = wait_until(running_with_progress, 15)
    done = int(row[3].removeprefix("実行中 ").split("/")[0])
    assert row[1] == SLOW[transport] and row[5] == f"{done}件目を処理しました"
    assert not job.done(), "progress must be seen while the call runs"
    assert "6まで数えました" in job.result(timeout=30)
    assert client.predict(api_name="/tool_status")[0][3] == "完了"
    assert events(files[transport])[-1] == "finished"


def counting(mcp, transport: str, to: int) -> tuple[Client, Path, Job]:
    """A /chat whose call of the slow server's tool has reported its first step of `to`."""
    app, files = mcp
    client = Client(app.url, verbose=False)
    files[transport].write_text("", encoding="utf-8")  # this test's events only
    job = client.submit(f"数えて{transport} {to}", api_name="/chat")
    wait_until(lambda: f"progress 1/{to}" in events(files[transport]), 15)
    return client, files[transport], job


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_cancel_tool_api_reaches_the_server_and_ends_the_chat(mcp, transport, caplog, capfd):
    caplog.set_level(logging.INFO)
    client, log, job = counting(mcp, transport, 40)
    cancelled_at = time.monotonic()
    answer = client.predict(SLOW[transport], api_name="/cancel_tool")
    assert answer == f"1件のツールをキャンセルしました（{SLOW[transport]}）。"
    wait_until(lambda: events(log)[-1] == "cancelled", 1.0, every=0.02)  # the server saw it in 1 s
    reply = job.result(timeout=10)
    assert time.monotonic() - cancelled_at < 5, "the chat of the cancelled call ends promptly"
    assert '"status": "cancelled"' in reply
    assert client.predict(api_name="/tool_status")[0][3] == "キャンセル"
    assert client.predict("", api_name="/cancel_tool") == "実行中のツールはありません。"
    assert_no_traceback(caplog, capfd)


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_the_model_cancels_with_cancel_tool(mcp, transport, caplog, capfd):
    caplog.set_level(logging.INFO)
    client, log, job = counting(mcp, transport, 41)
    cancelled_at = time.monotonic()
    answer = client.predict(f"やっぱり{transport}はやめて", api_name="/chat")
    wait_until(lambda: events(log)[-1] == "cancelled", 2.0, every=0.02)
    first = job.result(timeout=10)
    assert time.monotonic() - cancelled_at < 6, "the chat of the cancelled call ends promptly"
    # Both outputs (the cancel tool's and the cancelled call's) reach the model; like a model, it may tell both
    # in whichever of the two turns' responses comes first.
    told = answer + first
    assert f'"cancelled": ["{SLOW[transport]}"]' in told and '"status": "cancelled"' in told, (answer, first)
    assert_no_traceback(caplog, capfd)


def test_the_server_that_cannot_start_is_one_line_and_shown(mcp):
    app, _ = mcp
    assert list(app.registry.tools.unavailable()) == ["broken"]
    with urllib.request.urlopen(app.url + "config", timeout=10) as page:
        config = page.read().decode()
    assert "MCP サーバー「broken」は使えません" in config
    assert TOKEN not in config
    assert Client(app.url, verbose=False).predict("こんにちは", api_name="/chat") == "echo:こんにちは"


def test_a_bad_server_is_one_log_line_without_traceback_or_secret(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("SLOW_TOKEN", TOKEN)
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "broken": {"command": str(tmp_path / "missing")},
        "gone": {"url": f"http://127.0.0.1:{free_port()}/mcp", "headers": {"X-Key": "${SLOW_TOKEN}"}},
        "time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]},
    }}), encoding="utf-8")
    toolbox = app_toolbox(Settings(mcp_config=str(config)))
    try:
        assert set(toolbox.unavailable()) == {"broken", "gone"}
        assert "get_current_time" in {s["name"] for s in toolbox.schemas()}  # the other server works
    finally:
        toolbox.close()
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "mcp_tools"]
    assert len(failures) == 2 and all(r.exc_info is None for r in failures), [r.getMessage() for r in failures]
    assert TOKEN not in caplog.text and "Traceback" not in caplog.text


def test_a_dead_stdio_server_is_started_again_on_the_next_call(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"slow": {"command": sys.executable, "args": [str(SERVER)]}}}),
                      encoding="utf-8")
    toolbox = app_toolbox(Settings(mcp_config=str(config)))
    pid_tool = toolbox.get("server_pid")
    try:
        first = asyncio.run(pid_tool.run({}, toolbox.context))["result"]  # the SDK's structured result
        os.kill(first, signal.SIGKILL)  # the server process this test's app started
        second = asyncio.run(pid_tool.run({}, toolbox.context))["result"]
        assert second != first
        assert asyncio.run(pid_tool.run({}, toolbox.context))["result"] == second  # one session again, kept
    finally:
        toolbox.close()
    lines = [r for r in caplog.records if r.name == "mcp_tools" and r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in lines] == ["MCP サーバー「slow」(python3.11) との接続が切れていました。再起動します"
                                               .replace("python3.11", Path(sys.executable).name)]
    assert not [r for r in caplog.records if r.exc_info]
