"""What a deployer relies on at run time: secrets never served, login, the API client example, share."""

from __future__ import annotations

import dataclasses
import http.client
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import ScriptedAssistant, call, settings_for
from gradio_client import Client
from support.apphost import free_port, running_app, scripted_server

from offline.engine import Say
from offline.runtime import serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
CLIENT_SCRIPT = ROOT / "examples" / "api_client.py"


# --- helpers ---------------------------------------------------------------------------------------

def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (httpx would normalise `..` away)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run_client(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, str(CLIENT_SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)


# --- (d) secrets and files through the launched app ---------------------------------------------------

SECRET = "sk-test-" + secrets.token_hex(24)  # made here, so it can only reach a response through the app


@pytest.fixture(scope="module")
def keyed_app():
    assistant = ScriptedAssistant()
    server = scripted_server(assistant, api_key=SECRET)
    serve_in_thread(server)
    settings = dataclasses.replace(settings_for(server, "azure-ga"), api_key=SECRET)
    with running_app(settings=settings) as app:
        yield app


def test_the_api_key_is_in_use_but_never_served(keyed_app, caplog):
    caplog.set_level("INFO")
    client = Client(keyed_app.url, verbose=False)
    assert client.predict("こんにちは", api_name="/chat") == "echo:こんにちは"  # the service accepted the key
    for path in ("/", "/config", "/gradio_api/info", "/gradio_api/info?all_endpoints=true"):
        response = httpx.get(keyed_app.url.rstrip("/") + path, timeout=10)
        assert response.status_code == 200, path
        assert SECRET not in response.text, f"the API key is served at {path}"
        assert SECRET[8:] not in response.text, f"the API key is served at {path}"
    assert SECRET not in caplog.text


@pytest.mark.parametrize("target", [".env", "settings.py", "app.py", "/etc/passwd", "knowledge.sqlite3"])
def test_files_on_the_server_are_not_readable(keyed_app, target):
    repo = str(ROOT)
    forms = {
        ".env": [".env", f"{repo}/.env", "../.env"],
        "settings.py": ["settings.py", f"{repo}/settings.py", "./settings.py", "tests/../settings.py"],
        "app.py": ["app.py", f"{repo}/app.py", "%2e%2e/main/app.py", "..%2F" + Path(repo).name + "%2Fapp.py"],
        "/etc/passwd": ["/etc/passwd", "../../../../../../etc/passwd", "%2Fetc%2Fpasswd",
                        "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd"],
        "knowledge.sqlite3": [str(Path(tempfile.gettempdir()) / "voice-assistant" / "knowledge.sqlite3")],
    }[target]
    markers = {".env": [SECRET], "settings.py": ["def load_settings"], "app.py": ["def create_app"],
               "/etc/passwd": ["root:"], "knowledge.sqlite3": ["SQLite format"]}[target]
    for form in forms:
        for prefix in ("/file=", "/gradio_api/file=", "/gradio_api/file/"):
            status, body = raw_get(keyed_app.url, prefix + form)
            text = body.decode("utf-8", "replace")
            assert status in (400, 403, 404), f"{prefix}{form} answered {status}"
            assert not any(marker in text for marker in markers), f"{prefix}{form} served the file"


# --- (e) login -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def login_app():
    assistant = ScriptedAssistant({
        r"調べて": lambda m: [Say("検索を始めます。"), call("search_database", query="機械学習")],
    })
    with running_app("azure-ga", assistant, auth=("user", "pass")) as app:
        yield app


def test_login_is_required_and_checked(login_app):
    with pytest.raises(Exception, match=r"(?i)login|credentials"):
        Client(login_app.url, verbose=False)
    with pytest.raises(Exception, match=r"(?i)login"):
        Client(login_app.url, auth=("user", "wrong"), verbose=False)
    assert httpx.get(login_app.url.rstrip("/") + "/gradio_api/info", timeout=10).status_code == 401
    client = Client(login_app.url, auth=("user", "pass"), verbose=False)
    assert client.predict("こんにちは", api_name="/chat") == "echo:こんにちは"


# --- (f) examples/api_client.py ------------------------------------------------------------------------

def test_api_client_streams_the_reply_and_prints_the_tool_table(login_app):
    result = run_client(login_app.url, "--auth", "user:pass", "機械学習について調べて")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("検索を始めます。") == 1, "each part of the reply is printed once, as it streams"
    assert '"status": "completed"' in out  # the scripted model told the search result within the same turn
    header = next(line for line in out.splitlines() if line.startswith("開始時刻"))
    assert [c.strip() for c in header.split("|")] == ["開始時刻", "ツール", "引数", "状態", "経過秒", "結果"]
    row = next(line for line in out.splitlines() if "search_database" in line)
    assert "完了" in row and "機械学習" in row
    assert "Traceback" not in result.stderr


def test_api_client_says_clearly_when_login_fails(login_app):
    missing = run_client(login_app.url, "こんにちは")
    wrong = run_client(login_app.url, "--auth", "user:wrong", "こんにちは")
    for result, words in ((missing, "--auth"), (wrong, "パスワード")):
        assert result.returncode == 1
        assert words in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""


def test_api_client_says_clearly_when_nothing_listens():
    result = run_client(f"http://127.0.0.1:{free_port()}/", "こんにちは", timeout=60)
    assert result.returncode == 1
    assert "接続できません" in result.stderr and "Traceback" not in result.stderr


# --- (g) --share without a reachable share server ------------------------------------------------------

def fake_frpc_home(home: Path) -> Path:
    """An HF_HOME whose gradio tunnel binary fails like frpc does when the share server is unreachable."""
    from gradio.tunneling import BINARY_FILENAME

    binary = home / "gradio" / "frpc" / BINARY_FILENAME
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho 'login to server failed: dial tcp 127.0.0.1:1: connect: connection refused'\n")
    binary.chmod(0o755)
    return home


def test_share_failure_is_reported_and_the_app_keeps_serving_locally(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_OPENAI_", "OPENAI_", "APP_"))}
    env.update({
        "REALTIME_PROVIDER": "offline",
        "HF_HOME": str(fake_frpc_home(tmp_path / "hf")),
        "GRADIO_SHARE_SERVER_ADDRESS": "127.0.0.1:1",  # never the real share server: loopback, closed port
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUNBUFFERED": "1",
    })
    log = tmp_path / "app.log"
    with log.open("w") as out:
        # cwd is a scratch dir: no developer .env is read, and gradio's cache stays out of the repo.
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--share", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
                                stdin=subprocess.DEVNULL)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code
            except httpx.HTTPError:
                status = None
            if status == 200 and "serving at" in log.read_text(encoding="utf-8"):
                break
            time.sleep(0.2)
        output = log.read_text(encoding="utf-8")
        assert proc.poll() is None, f"the app exited:\n{output}"
        assert status == 200, f"GET / did not answer:\n{output}"
        assert "Traceback" not in output
        assert any("共有リンク" in line and "ローカル" in line for line in output.splitlines()), \
            f"no Japanese message that the share link failed and the app serves locally:\n{output}"
        assert "APP_USERNAME" in output, "sharing without a password must warn"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
