"""The app under test for the browser tests, and Chromium to drive it (shared fixtures).

`app` runs the offline engine (what `python app.py` runs without credentials) and the tests' scripted
Realtime server in the Azure preview dialect; test modules load this file with
`pytest_plugins = ["support.browser_app"]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ScriptedAssistant

from support.browser import CHROMIUM, chromium_args


@dataclass
class BrowserApp:
    mode: str  # "offline" or "azure-preview"
    url: str
    registry: object
    server: object  # support.service.InstrumentedServer (its ConnectionRecords show what the app sent)
    assistant: ScriptedAssistant | None
    weather: object

    @property
    def offline(self) -> bool:
        return self.mode == "offline"

    def new_connections(self, since: int) -> list:
        return list(self.server.connections[since:])

    def conversation_of(self, session_hash: str):
        """The live conversation of a page (by its Gradio session hash)."""
        conversation = self.registry.peek(session_hash)
        assert conversation is not None, f"no live conversation for {session_hash}"
        return conversation


@pytest.fixture(scope="module")
def weather():
    from support.openmeteo_server import serve_open_meteo

    with serve_open_meteo() as om, pytest.MonkeyPatch.context() as env:
        env.setenv("OPEN_METEO_FORECAST_URL", om.forecast_url)
        env.setenv("OPEN_METEO_GEOCODING_URL", om.geocoding_url)
        env.setenv("SEARCH_LATENCY_SECONDS", "3")  # read once when the app starts; the tool-table test needs it
        yield om


@pytest.fixture(scope="module", params=["offline", "azure-preview"])
def app(request, weather) -> Iterator[BrowserApp]:
    from offline.runtime import OfflineEngine, build_offline_server, serve_in_thread
    from settings import OfflineSettings, load_settings
    from support.apphost import running_app
    from support.service import InstrumentedServer

    if request.param == "offline":
        # What `python app.py` runs without credentials (app.make_registry → start_offline_engine, here without
        # speech recognition), with the engine's server object kept so the test can see what the app sent it.
        server = build_offline_server(server_class=InstrumentedServer)
        engine = OfflineEngine(serve_in_thread(server) + "/v1", OfflineSettings(asr_model="none"), None)
        with running_app(settings=load_settings({}).realtime, offline=engine) as running:
            yield BrowserApp("offline", running.url, running.registry, server, None, weather)
    else:
        with running_app("azure-preview", ScriptedAssistant()) as running:
            yield BrowserApp("azure-preview", running.url, running.registry, running.server, running.assistant,
                             weather)


@pytest.fixture(scope="module")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture
def launch(playwright_driver) -> Iterator[Callable[[Path | None], object]]:
    """Start Chromium whose microphone plays `wav` once (None: Chromium's own fake device)."""
    browsers = []

    def start(wav: Path | None):
        browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(wav))
        browsers.append(browser)
        return browser

    yield start
    for browser in browsers:
        for context in browser.contexts:
            context.close()  # the page goes away: the app's unload ends its session
        browser.close()
