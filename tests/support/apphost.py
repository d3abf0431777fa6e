"""Launch the real Gradio app on loopback against a local Realtime server on its own thread."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from conftest import ScriptedAssistant, ToneVoice, eventually, settings_for

from app import create_app
from conversation.conversation import Conversation
from offline.runtime import OfflineEngine, serve_in_thread
from offline.speech import EnergySpeechDetector
from offline.streaming import Voice
from settings import RealtimeSettings, load_settings
from support.service import InstrumentedServer
from support.webrtc_client import VoiceClient
from web.browsers import BrowserSessions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    server: InstrumentedServer | None
    registry: BrowserSessions
    assistant: ScriptedAssistant | None


def scripted_server(assistant: ScriptedAssistant, api_key: str = "test-key-not-a-secret",
                    voice: Callable[[], Voice] = ToneVoice) -> InstrumentedServer:
    server = InstrumentedServer(lambda: assistant, voice, lambda: EnergySpeechDetector(threshold=500.0),
                                api_key=api_key, speed=8.0)

    async def transcribe(_pcm) -> str:
        return "こんにちは"

    server.transcriber = transcribe
    return server


@contextmanager
def running_app(flavour: str = "azure-ga", assistant: ScriptedAssistant | None = None,
                settings: RealtimeSettings | None = None, voice: Callable[[], Voice] = ToneVoice,
                offline: OfflineEngine | None = None, **launch: object) -> Iterator[RunningApp]:
    """The app as `python app.py` serves it; `settings` overrides the scripted server, `offline` runs it over
    an offline engine the test started."""
    server = None
    if settings is None:
        assistant = assistant or ScriptedAssistant()
        server = scripted_server(assistant, voice=voice)
        serve_in_thread(server)
        settings = settings_for(server, flavour)
    # The rest of the settings as `python app.py` reads them, so a test can set them in the environment first.
    demo, registry = create_app(replace(load_settings(), realtime=settings), host="127.0.0.1", offline=offline)
    demo.queue(default_concurrency_limit=None)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch)
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/", server, registry, assistant)
    finally:
        demo.close()
        if registry.tools:  # MCP servers the app started end with it
            registry.tools.close()
        time.sleep(0.1)


async def open_voice(app: RunningApp) -> tuple[VoiceClient, Conversation]:
    """A WebRTC peer connected to the app, and the conversation its voice joined (once connected)."""
    client = VoiceClient(app.url)
    answer = await client.connect()
    assert answer.get("sdp"), answer
    conversation = await eventually(lambda: (s := app.registry.peek(client.session_hash)) and s.voice_attached and s)
    await eventually(lambda: conversation.connected)
    return client, conversation
