"""Helpers for driving the app in a real headless Chromium (Debian `chromium` + PyPI `playwright`).

The microphone is Chromium's fake capture device fed from a WAV file (played once, from the moment
the page opens the microphone); what the page plays back is measured with `RTCPeerConnection.getStats()`.
Never run `playwright install`: the browser is the system's /usr/bin/chromium.
"""

from __future__ import annotations

import json
import os
import re
import time
import wave
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
SAMPLE_RATE = 24_000
VIEWPORT = {"width": 1280, "height": 900}
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
# The committed README picture is refreshed only on request (UPDATE_README_SCREENSHOT=1), so a test run
# never changes a tracked file; otherwise it goes with the other screenshots.
README_SCREENSHOT = (REPO / "docs" / "screenshot.png" if os.environ.get("UPDATE_README_SCREENSHOT") == "1"
                     else SCREENSHOTS / "readme.png")

BASE_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]

# Keep every RTCPeerConnection the page creates, so the test can read its stats.
CAPTURE_PEER_CONNECTIONS = """
(() => {
  const Original = window.RTCPeerConnection;
  if (!Original || window.__peerConnections) return;
  window.__peerConnections = [];
  class Captured extends Original {
    constructor(...args) { super(...args); window.__peerConnections.push(this); }
  }
  window.RTCPeerConnection = Captured;
})();
"""

INBOUND_AUDIO_ENERGY = """
async () => {
  let energy = 0;
  for (const pc of window.__peerConnections || []) {
    if (pc.connectionState === 'closed') continue;
    const stats = await pc.getStats();
    stats.forEach(r => { if (r.type === 'inbound-rtp' && r.kind === 'audio') energy += r.totalAudioEnergy || 0; });
  }
  return energy;
}
"""

# Chat messages as [role, text] in page order (gradio 5 Chatbot, type="messages").
CHAT_MESSAGES = """
() => [...document.querySelectorAll('[data-testid="user"], [data-testid="bot"]')]
        .map(e => [e.dataset.testid === 'user' ? 'user' : 'assistant', e.innerText.trim()])
"""

# The rows of the tool-status table (gradio 5 Dataframe) as lists of cell texts.
TABLE_ROWS = """
(label) => {
  // gradio draws an aria-hidden copy of the table to measure column widths: read the visible one.
  const blocks = [...document.querySelectorAll('.block')]
    .filter(b => b.innerText.includes(label) && b.querySelector('table:not([aria-hidden="true"])'));
  const block = blocks[blocks.length - 1];
  if (!block) return null;
  const rows = [...block.querySelectorAll('table:not([aria-hidden="true"]) tbody tr')];
  return rows.map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()))
             .filter(cells => cells.some(c => c !== ''));
}
"""


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium fonts-noto-cjk)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright==1.65.2)"
    return None


def browser_test_marks(timeout_s: int = 120) -> list[Any]:
    """`pytestmark` for a module of browser tests: marked `browser`, skipped (with the reason) without Chromium."""
    unavailable = browser_unavailable()
    return [pytest.mark.browser, pytest.mark.skipif(unavailable is not None, reason=unavailable or ""),
            pytest.mark.timeout(timeout_s)]


def chromium_args(wav: Path | None) -> list[str]:
    args = list(BASE_ARGS)
    if wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={wav.resolve()}%noloop")
    return args


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(SAMPLE_RATE * seconds), dtype=np.int16)


def speech_wav(path: Path, utterances: Iterable[str], lead: float = 1.0, gap: float = 2.5,
               tail: float = 2.0) -> list[tuple[float, float]]:
    """Write Japanese speech (offline TTS, 24 kHz int16 mono) with silence around and between the
    utterances; returns each utterance's (start, end) in seconds from the start of the file."""
    from offline.speech import synthesize

    parts, spans, at = [silence(lead)], [], lead
    for index, text in enumerate(utterances):
        if index:
            parts.append(silence(gap))
            at += gap
        pcm = synthesize(text)
        assert pcm.size, f"the offline TTS produced nothing for {text!r}"
        parts.append(pcm)
        spans.append((at, at + pcm.size / SAMPLE_RATE))
        at += pcm.size / SAMPLE_RATE
    parts.append(silence(tail))
    write_wav(path, np.concatenate(parts))
    return spans


def write_wav(path: Path, pcm: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.astype("<i2").tobytes())
    return path


def wait_until(page: Any, predicate: Callable[[], Any], timeout: float, message: str | Callable[[], str],
               interval_ms: int = 50) -> Any:
    """Poll a server-side condition; waits with the page's clock so Playwright keeps dispatching events.
    `message` (or what it returns, computed on failure) says what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s: {message() if callable(message) else message}")
        page.wait_for_timeout(interval_ms)


class SessionHashes:
    """The Gradio session hashes a page uses, in order, read from its queue requests."""

    def __init__(self, page: Any) -> None:
        self.seen: list[str] = []
        page.on("request", self._on_request)

    def _on_request(self, request: Any) -> None:
        if "/gradio_api/queue/join" not in request.url:
            return
        try:
            session_hash = json.loads(request.post_data or "{}").get("session_hash")
        except ValueError:
            return
        if session_hash and session_hash not in self.seen:
            self.seen.append(session_hash)

    @property
    def current(self) -> str | None:
        return self.seen[-1] if self.seen else None


def open_page(browser: Any, url: str) -> tuple[Any, SessionHashes]:
    """A page on the app in a fresh context; outside hosts (web fonts, CDNs) are refused at once."""
    context = browser.new_context(viewport=VIEWPORT, locale="ja-JP")
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])"), lambda route: route.abort())
    context.add_init_script(CAPTURE_PEER_CONNECTIONS)
    page = context.new_page()
    hashes = SessionHashes(page)
    page.goto(url)
    wait_for_page_ready(page)
    return page, hashes


def wait_for_page_ready(page: Any, timeout_ms: int = 20_000) -> None:
    """The app has rendered and its conversation is connected (the status line says so)."""
    record_button(page).or_(microphone_access_button(page)).first.wait_for(state="attached", timeout=timeout_ms)
    page.get_by_text("接続済み").first.wait_for(timeout=timeout_ms)


# fastrtc's record button: its aria-label ("start stream", put in Japanese by the page) whatever its label text.
RECORD_BUTTON = "録音の開始と停止"
RECORD_BUTTON_SELECTOR = f'button[aria-label="{RECORD_BUTTON}"]'


def record_button(page: Any) -> Any:
    return page.get_by_role("button", name=RECORD_BUTTON)


def microphone_access_button(page: Any) -> Any:
    # With WebRTC(full_screen=False) fastrtc first shows this button ("Click to Access Microphone"), then the
    # record button.
    return page.get_by_role("button", name="クリックしてマイクを許可")


def click(locator: Any) -> None:
    """Click through the DOM: fastrtc's full-screen audio layer can lie over the pointer target."""
    locator.evaluate("element => element.click()")


def start_recording(page: Any, timeout_ms: int = 15_000) -> None:
    button = record_button(page)
    if microphone_access_button(page).count():
        click(microphone_access_button(page))
        button.wait_for(state="attached", timeout=timeout_ms)
    click(button)
    page.wait_for_function(
        "(selector) => [...document.querySelectorAll(selector)].some(b => b.innerText.includes('停止'))",
        arg=RECORD_BUTTON_SELECTOR, timeout=timeout_ms)


def stop_recording(page: Any, timeout_ms: int = 10_000) -> None:
    click(record_button(page))
    page.wait_for_function(
        "(selector) => [...document.querySelectorAll(selector)].some(b => b.innerText.includes('録音開始'))",
        arg=RECORD_BUTTON_SELECTOR, timeout=timeout_ms)


def inbound_audio_energy(page: Any) -> float:
    return float(page.evaluate(INBOUND_AUDIO_ENERGY))


def chat_messages(page: Any) -> list[tuple[str, str]]:
    return [tuple(m) for m in page.evaluate(CHAT_MESSAGES)]


def wait_for_chat(page: Any, predicate: Callable[[list[tuple[str, str]]], Any], timeout: float,
                  message: str) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        messages = chat_messages(page)
        if predicate(messages):
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s: {message}; the chat shows {messages}")
        page.wait_for_timeout(50)


def message_box(page: Any) -> Any:
    return page.get_by_placeholder("メッセージを入力して Enter")


def tool_table(page: Any) -> list[list[str]]:
    return page.evaluate(TABLE_ROWS, "ツールの実行状況") or []


def send_text(page: Any, text: str) -> None:
    box = message_box(page)
    box.fill(text)
    box.press("Enter")
    # The box is cleared once the app took the message.
    page.wait_for_function(
        "() => document.querySelector('textarea[placeholder=\"メッセージを入力して Enter\"]').value === ''",
        timeout=10_000)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def readme_screenshot(page: Any) -> Path:
    """The README's picture: scrolled so the chat, the whole tool table and its cancel control are in the
    1280x900 view."""
    page.evaluate("""() => {
      const control = document.querySelector('#cancel-tool');
      if (control) window.scrollBy(0, Math.max(0, control.getBoundingClientRect().bottom - window.innerHeight + 24));
    }""")
    page.wait_for_timeout(100)  # one frame for the scroll to paint
    README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(README_SCREENSHOT))
    return README_SCREENSHOT


def event_log(record: Any, limit: int = 60) -> str:
    """What a realtime connection carried, compactly (for failure messages): '>' sent by the app, '<' by the server."""
    skip = ("input_audio_buffer.append", "delta")
    sent = [f"<{e.get('type')}" for e in record.sent if not any(k in e.get("type", "") for k in skip)]
    received = [f">{e.get('type')}" for e in record.received if not any(k in e.get("type", "") for k in skip)]
    return f"server sent {sent[-limit:]}; app sent {received[-limit:]}"
