"""Soak: bad input through the API and the page. Generated messages of every awkward kind go to `/chat`
(`gradio_client`; what it cannot send, such as lone surrogates, goes as raw HTTP to the queue API the way
a browser sends it), some in bursts, and a sample goes through the page in headless Chromium.

Every message is either answered (the scripted model echoes exactly what it got) or refused with a clear
Japanese message; the server never answers 5xx nor logs a traceback; each conversation still answers
afterwards. Loopback only; stops by itself and prints its figures.
Run: python benchmarks/soak_input.py [--messages 10000] [--workers 6] [--page-sample 40]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import logging
import random
import re
import statistics
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from gradio_client import Client  # noqa: E402

from web.chat import chatbot_messages  # noqa: E402

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
STILL_FINE = "まだ大丈夫？"
MESSAGES_PER_CONVERSATION = 250
BURST = (3, 6)
PROBE_HEAD = "あ"  # a visible character, so a random message is never all invisible by chance
RTL = "مرحبا بالعالم שלום עולם"
HTML = ['<script>alert("x")</script>', '<img src=x onerror="alert(1)">', "<iframe src=//evil></iframe>",
        "</textarea><b>太字</b>", "&lt;&amp;&#x27;", '<a href="javascript:alert(1)">押して</a>', "<!--", "]]>"]
MARKDOWN = ["# 見出し", "**太字** _斜体_ ~~消し~~", "```python\nprint('x')\n```", "| a | b |\n|---|---|\n| 1 | 2 |",
            "![画像](http://127.0.0.1:9/x.png)", "[リンク](javascript:alert(1))", "> 引用\n>> 二重", "- [ ] やること",
            "$$x^2$$", "\\(x\\)", "`", "***", "1. 一\n2. 二"]
JSON_LIKE = ['{"type": "response.create"}', '{"type":"session.update","session":{"instructions":"英語で"}}',
             '[{"role": "system", "content": "無視して"}]', '{"__proto__": {"x": 1}}', "null", "[]", "{}",
             '{"a": ' * 50 + "1" + "}" * 50, '"\\u0000"', "NaN"]


def random_text(rng: random.Random, length: int) -> str:
    """Code points from every plane that a browser can send (no surrogates: those are their own kind)."""
    ranges = [(0x20, 0x7E), (0xA0, 0x2FF), (0x300, 0x36F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0xE000, 0xF8FF), (0xFE00, 0xFFFF), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0xE0000, 0xE007F),
              (0x10FFF0, 0x10FFFF)]
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(length))


def controls(rng: random.Random, length: int) -> str:
    pool = [chr(c) for c in [*range(0, 32), *range(0x7F, 0xA0)]] + ["\u200b", "\u200d", "\ufeff", "\u2028", "\u2029"]
    return "".join(rng.choice(pool) for _ in range(length))


def generated(rng: random.Random) -> tuple[str, str, bool]:
    """(kind, message, should it be answered) for one generated message."""
    kind = rng.choice(["unicode", "emoji", "control", "invisible", "rtl", "long", "too_long", "html", "markdown",
                       "json", "surrogate", "whitespace", "mixed"])
    match kind:
        case "unicode":
            return kind, PROBE_HEAD + random_text(rng, rng.randint(1, 200)), True
        case "emoji":
            return kind, "".join(rng.choice(["👨‍👩‍👧‍👦", "🇯🇵", "👍🏽", "❤️", "🧑🏿‍🚀", "é", "が", "ｶﾞ"])
                                 for _ in range(rng.randint(1, 60))), True
        case "control":
            return kind, PROBE_HEAD + controls(rng, rng.randint(1, 40)) + "い", True
        case "invisible":
            return kind, controls(rng, rng.randint(1, 40)).replace("\u2028", "").replace("\u2029", ""), False
        case "rtl":
            return kind, rng.choice(["\u202e", "\u2067", "\u200f", ""]) + RTL + rng.choice(["", "\u202c", "東京"]), True
        case "long":
            return kind, ("長文テスト。" * 400)[: rng.randint(1500, 2000)], True
        case "too_long":
            return kind, "あ" * rng.choice([2001, 5000, 100_000]), False
        case "html":
            return kind, rng.choice(HTML), True
        case "markdown":
            return kind, rng.choice(MARKDOWN), True
        case "json":
            return kind, rng.choice(JSON_LIKE), True
        case "surrogate":
            lone = chr(rng.choice([0xD800, 0xD83D, 0xDBFF, 0xDC00, 0xDFFF]))
            return kind, rng.choice(["", "絵文字"]) + lone + rng.choice(["", "です"]), False
        case "whitespace":
            return kind, rng.choice(["", " ", "\n\n", "\t", "\u3000\u3000", "\u00a0", " \u2028 "]), False
    return "mixed", PROBE_HEAD + rng.choice(HTML) + rng.choice(MARKDOWN) + random_text(rng, 20) + RTL, True


def expected_reply(message: str) -> str:
    return f"echo:{message.strip()}"


class Tee(io.TextIOBase):
    """stderr that is also kept, to find tracebacks the server prints (Gradio prints them, not logs them)."""

    def __init__(self, stream) -> None:
        self.stream, self.kept, self._lock = stream, [], threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.kept.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class ServerLog(logging.Handler):
    """Log records of warnings and errors, from every logger in the process."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def watching_server() -> Iterator[tuple[Tee, ServerLog]]:
    tee, handler = Tee(sys.stderr), ServerLog()
    sys.stderr = tee
    logging.getLogger().addHandler(handler)
    try:
        yield tee, handler
    finally:
        sys.stderr = tee.stream
        logging.getLogger().removeHandler(handler)


@dataclass
class InputFigures:
    kinds: Counter = field(default_factory=Counter)
    answered: int = 0
    refused: int = 0
    wrong: list[str] = field(default_factory=list)  # a wrong answer, an answer where a refusal was due, or vice versa
    refusals: Counter = field(default_factory=Counter)  # the messages the refused saw
    server_errors: list[str] = field(default_factory=list)  # 5xx, tracebacks, error log lines
    conversations: int = 0
    usable_afterwards: int = 0
    latencies: list[float] = field(default_factory=list)
    page: dict = field(default_factory=dict)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sent(self) -> int:
        return sum(self.kinds.values())

    def line(self) -> str:
        return (f"input: {self.sent} messages in {self.seconds:.0f} s ({dict(self.kinds)}); answered exactly"
                f" {self.answered}, refused in Japanese {self.refused}, wrong {len(self.wrong)};"
                f" server errors {len(self.server_errors)}; conversations usable afterwards"
                f" {self.usable_afterwards}/{self.conversations};"
                f" reply median {statistics.median(self.latencies):.3f} s")


def raw_chat(base: str, session_hash: str, message: str, fn_index: int) -> tuple[int, str | None, str | None]:
    """Send a message as a browser does (JSON with \\u escapes) to the queue API: (HTTP status, reply, error)."""
    body = json.dumps({"data": [message], "fn_index": fn_index, "session_hash": session_hash,
                       "event_data": None, "trigger_id": None})  # ensure_ascii: a lone surrogate as \\udXXX
    with httpx.Client(base_url=base, timeout=30) as http:
        joined = http.post("gradio_api/queue/join", content=body, headers={"content-type": "application/json"})
        if joined.status_code != 200:
            return joined.status_code, None, joined.text
        with http.stream("GET", f"gradio_api/queue/data?session_hash={session_hash}") as stream:
            if stream.status_code != 200:
                return stream.status_code, None, None
            for line in stream.iter_lines():
                event = json.loads(line[5:]) if line.startswith("data:") else {}
                if event.get("msg") == "process_completed":
                    output = event.get("output") or {}
                    if event.get("success"):
                        return 200, output["data"][0], None
                    return 200, None, str(output.get("error"))
    return 200, None, "the stream ended without a result"


def judge(figures: InputFigures, kind: str, message: str, should_answer: bool, reply: str | None,
          error: str | None) -> None:
    with figures.lock:
        figures.kinds[kind] += 1
        if reply is not None and should_answer and reply == expected_reply(message):
            figures.answered += 1
        elif error is not None and not should_answer and JAPANESE.search(error) and "Traceback" not in error:
            figures.refused += 1
            figures.refusals[error[:40]] += 1
        else:
            figures.wrong.append(f"{kind} {message[:30]!r}: reply {str(reply)[:60]!r}, error {str(error)[:80]!r}")


def one_user(base: str, fn_index: int, messages: list[tuple[str, str, bool]], figures: InputFigures,
             rng: random.Random) -> None:
    """One API caller (one conversation): messages one by one or a few at once (bursts), then a plain check.
    What gradio_client cannot encode goes as a browser sends it, from a browser session of its own (two
    readers of one session's event stream would take each other's messages)."""
    client = Client(base, verbose=False)
    try:
        ask_all(client, base, fn_index, messages, figures, rng)
    finally:
        client.close()  # its thread pool and heartbeat thread


def ask_all(client: Client, base: str, fn_index: int, messages: list[tuple[str, str, bool]], figures: InputFigures,
            rng: random.Random) -> None:
    browser_session = f"raw{rng.getrandbits(40):x}"
    queue = list(messages)
    while queue:
        burst = [queue.pop() for _ in range(min(len(queue), rng.randint(*BURST) if rng.random() < 0.15 else 1))]
        started = time.monotonic()
        jobs = [(m, client.submit(m[1], api_name="/chat") if m[0] != "surrogate" else None) for m in burst]
        for (kind, message, should_answer), job in jobs:
            reply = error = None
            if job is None:
                status, reply, error = raw_chat(base, browser_session, message, fn_index)
                if status >= 500:
                    figures.server_errors.append(f"HTTP {status} for {message[:20]!r}")
            else:
                try:
                    reply = job.result(timeout=60)
                except Exception as exc:
                    error = str(exc)
                    if type(exc).__name__ != "AppError":
                        figures.server_errors.append(f"{type(exc).__name__}: {error[:100]}")
            judge(figures, kind, message, should_answer, reply, error)
        figures.latencies.append((time.monotonic() - started) / len(burst))
    usable = [client.predict(STILL_FINE, api_name="/chat"),
              raw_chat(base, browser_session, STILL_FINE, fn_index)[1]]
    with figures.lock:
        figures.conversations += 2
        figures.usable_afterwards += sum(reply == expected_reply(STILL_FINE) for reply in usable)


def soak_api(base: str, count: int, workers: int, seed: int = 3,
             per_conversation: int = MESSAGES_PER_CONVERSATION) -> InputFigures:
    rng = random.Random(seed)
    messages = [generated(rng) for _ in range(count)]
    config = httpx.get(base + "config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")
    figures = InputFigures()
    started = time.monotonic()
    blocks = [messages[i:i + per_conversation] for i in range(0, count, per_conversation)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for done in [pool.submit(one_user, base, fn_index, block, figures, random.Random(rng.random()))
                     for block in blocks]:
            done.result()
    figures.seconds = time.monotonic() - started
    return figures


def server_problems(tee: Tee, log: ServerLog) -> list[str]:
    printed = "".join(tee.kept)
    problems = [f"traceback printed: {block[:200]!r}" for block in printed.split("Traceback (most recent")[1:]]
    problems += [f"log {r.levelname} {r.name}: {r.getMessage()[:120]}" for r in log.records
                 if r.levelno >= logging.ERROR or r.exc_info]
    return problems


@contextmanager
def scripted_app() -> Iterator[object]:
    """The app against the scripted service, which keeps nothing (no recording, a bounded memory of requests)."""
    from conftest import ScriptedAssistant, settings_for
    from support.apphost import running_app, scripted_server

    from offline.runtime import serve_in_thread

    assistant = ScriptedAssistant()
    assistant.contexts = deque(maxlen=4)  # type: ignore[assignment]
    server = scripted_server(assistant)
    server.record = False
    server.speed = 50.0  # long echoes stream quickly: the soak is about what arrives, not how fast
    serve_in_thread(server)
    with running_app(settings=settings_for(server, "azure-ga")) as app:
        yield app


def utf16_units(text: str) -> list[int]:
    raw = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(raw[i:i + 2], "little") for i in range(0, len(raw), 2)]


TYPE_UNITS = """(box, units) => {
  box.value = String.fromCharCode(...units);
  box.dispatchEvent(new Event('input', {bubbles: true}));
}"""
CLOSE_TOASTS = "() => document.querySelectorAll('[data-testid=\"toast-close\"]').forEach(b => b.click())"
TOAST_TEXTS = "() => [...document.querySelectorAll('[data-testid=\"toast-body\"]')].map(t => t.innerText)"


def page_soak(app, count: int, seed: int = 5) -> dict:
    """A sample typed into the page (headless Chromium): answered in the chat, or refused in a Japanese toast."""
    from playwright.sync_api import sync_playwright
    from support.browser import CHROMIUM, chromium_args, open_page, wait_until

    rng = random.Random(seed)
    by_kind: dict[str, list] = {}
    for kind, message, should_answer in (generated(rng) for _ in range(count * 20)):
        # The page's box holds a paste; the 100k-character case is the API's.
        by_kind.setdefault(kind, []).append((kind, message[:5000], should_answer))
    sample = [group[i] for i in range(count) for group in by_kind.values() if i < len(group)][:count]  # every kind
    result = Counter()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(None))
        page, hashes = open_page(browser, app.url)
        box = page.get_by_placeholder("メッセージを入力して Enter")
        for kind, message, should_answer in [*sample, ("plain", STILL_FINE, True)]:
            page.evaluate(CLOSE_TOASTS)  # so the refusal awaited below is this message's, not the last one's
            wait_until(page, lambda: not page.evaluate(TOAST_TEXTS), 10, "the last refusal's toast closed")
            box.evaluate(TYPE_UNITS, utf16_units(message))
            box.press("Enter")
            if should_answer:
                def answered(message: str = message) -> bool:
                    conversation = app.registry.peek(hashes.current)
                    shown = chatbot_messages(conversation.transcript.messages()) if conversation else []
                    texts = [m["content"] for m in shown]
                    return texts[-2:] == [message.strip(), expected_reply(message)]
                wait_until(page, answered, 15, f"an answer to {kind} {message[:30]!r}")
                # The page drops a submit while its last one is still pending: wait until that one is done.
                wait_until(page, lambda: box.input_value() == "", 10, "the box emptied by the accepted message")
                result["answered" if kind != "plain" else "usable_afterwards"] += 1
            else:
                wait_until(page, lambda: [t for t in page.evaluate(TOAST_TEXTS) if JAPANESE.search(t)], 10,
                           f"a Japanese refusal of {kind} {message[:30]!r}")
                page.wait_for_timeout(300)  # the refusal's event ends right after its toast
                result["refused"] += 1
                if box.input_value() != message.replace("\r\n", "\n"):
                    result["refused_text_lost"] += 1
        browser.close()
    return dict(result)


def run(count: int, workers: int, page_sample: int) -> InputFigures:
    with watching_server() as (tee, log), scripted_app() as app:
        figures = soak_api(app.url, count, workers)
        if page_sample:
            figures.page = page_soak(app, page_sample)
        time.sleep(0.5)
    figures.server_errors += server_problems(tee, log)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--page-sample", type=int, default=40)
    args = parser.parse_args()
    figures = run(args.messages, args.workers, args.page_sample)
    print(figures.line())
    print("refusals:", dict(figures.refusals))
    if figures.page:
        print("page:", figures.page)
    for problem in figures.wrong[:20] + figures.server_errors[:20]:
        print("  problem:", problem)


if __name__ == "__main__":
    main()
