"""リアルタイム音声アシスタント — run `python app.py` (flags: --host --port --share --debug)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr
from dotenv import load_dotenv

from settings import RealtimeSettings, load_settings
from web.browsers import BrowserSessions
from web.ice import ice_servers
from web.page import build_ui

log = logging.getLogger("app")


def env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        log.warning("%s is not a number; using %s", name, default)
        return default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    on_space = bool(os.environ.get("SPACE_ID"))
    parser = argparse.ArgumentParser(description="リアルタイム音声アシスタント（Azure OpenAI / OpenAI Realtime API）")
    default_host = os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_space else "127.0.0.1")
    parser.add_argument("--host", default=default_host)
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT") or 7860))
    parser.add_argument("--share", action="store_true", help="Gradio の共有リンクを発行する")
    parser.add_argument("--debug", action="store_true", help="プロトコルのイベント種別と時刻をログに出す")
    return parser.parse_args(argv)


def auth_from_env() -> tuple[str, str] | None:
    """Gradio login from APP_USERNAME / APP_PASSWORD (both needed)."""
    user, password = os.environ.get("APP_USERNAME", ""), os.environ.get("APP_PASSWORD", "")
    return (user, password) if user and password else None


def make_registry(settings: RealtimeSettings, debug: bool) -> BrowserSessions:
    if settings.provider == "offline" and not settings.base_url:
        from offline.runtime import start_offline_engine

        settings = settings.with_base_url(start_offline_engine())
    idle = env_number("SESSION_IDLE_TIMEOUT_SECONDS", 600)
    return BrowserSessions(lambda: settings, idle_timeout=idle, debug=debug)


def create_app(settings: RealtimeSettings | None = None, host: str = "127.0.0.1", share: bool = False,
               debug: bool = False) -> tuple[gr.Blocks, BrowserSessions]:
    settings = settings or load_settings()
    registry = make_registry(settings, debug)
    rtc, server_rtc = ice_servers(host, share)
    demo = build_ui(
        registry, settings, rtc, server_rtc,
        max_voice_sessions=int(env_number("MAX_VOICE_SESSIONS", 4)),
        voice_time_limit=env_number("VOICE_SESSION_TIME_LIMIT_SECONDS", 900),
    )
    return demo, registry


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    load_dotenv(".env", override=False)  # before the flags: GRADIO_SERVER_NAME/PORT may come from .env
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "websockets", "aioice", "aiortc", "openai", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings()
    log.info("provider: %s", settings.label)
    demo, _registry = create_app(settings, args.host, args.share, args.debug)
    demo.queue(default_concurrency_limit=None)
    auth = auth_from_env()
    if args.share and auth is None:
        log.warning("共有リンクにログインが設定されていません。リンクを知っている人は誰でもあなたの API 枠を使えます。"
                    "APP_USERNAME と APP_PASSWORD を設定してください。")
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True,
                auth=auth, max_file_size="1mb")
    if args.share and not demo.share_url:
        # Gradio catches a failed tunnel itself (English message, no exception): say it plainly, keep serving.
        log.error("共有リンクを作成できませんでした（共有サーバーに接続できません）。ローカル（%s）でのみ提供します。",
                  demo.local_url)
    log.info("serving at %s (ready in %.1f s)", demo.local_url, time.perf_counter() - started)
    if demo.share_url:
        log.info("共有リンク: %s", demo.share_url)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
