"""リアルタイム音声アシスタント — run `python app.py` (flags: --host --port --share --debug)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr
from dotenv import load_dotenv

from mcp_tools import app_toolbox
from settings import Settings, load_settings
from web.browsers import BrowserSessions
from web.ice import ice_servers
from web.page import build_ui

if TYPE_CHECKING:  # the offline engine (speech models) is imported only when it runs
    from offline.runtime import OfflineEngine
    from shared_state.replica import SharedState

log = logging.getLogger("app")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="リアルタイム音声アシスタント（Azure OpenAI / OpenAI Realtime API）")
    # No defaults here: unset flags fall back to the settings (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).
    parser.add_argument("--host", help="待ち受けるアドレス（既定 127.0.0.1、Space では 0.0.0.0）")
    parser.add_argument("--port", type=int, help="待ち受けるポート（既定 7860）")
    parser.add_argument("--share", action="store_true", help="Gradio の共有リンクを発行する")
    parser.add_argument("--debug", action="store_true", help="プロトコルのイベント種別と時刻をログに出す")
    return parser.parse_args(argv)


def make_registry(settings: Settings, debug: bool,
                  engine: OfflineEngine | None = None) -> tuple[BrowserSessions, OfflineEngine | None]:
    """The registry of browser sessions; in offline mode over the given engine, or one started here."""
    realtime = settings.realtime
    if realtime.provider == "offline" and not realtime.base_url:
        if engine is None:
            from offline.runtime import start_offline_engine

            engine = start_offline_engine(settings.offline)
        realtime = realtime.with_base_url(engine.url)
    registry = BrowserSessions(lambda: realtime, tools=app_toolbox(settings),
                               idle_timeout=settings.idle_timeout, debug=debug, shared=shared_state(settings))
    return registry, engine


def shared_state(settings: Settings) -> SharedState | None:
    """With REDIS_URL: the state replicas share (deploy/cluster.py); without it nothing new is imported."""
    if not settings.redis_url:
        return None
    from shared_state.replica import SharedState

    log.info("shared state in Redis (conversations kept %.0f s after their last change)", settings.redis_ttl)
    return SharedState(settings.redis_url, settings.redis_ttl)


def create_app(settings: Settings, host: str = "127.0.0.1", share: bool = False, debug: bool = False,
               offline: OfflineEngine | None = None) -> tuple[gr.Blocks, BrowserSessions]:
    """The page, its API and the browser-session registry for these settings (the tests call this too)."""
    registry, engine = make_registry(settings, debug, offline)
    rtc, server_rtc = ice_servers(host, share, settings.relay, settings.on_space)
    demo = build_ui(
        registry, settings.realtime, rtc, server_rtc,
        max_voice_sessions=settings.max_voice_sessions,
        voice_time_limit=settings.voice_time_limit,
        voice_media_timeout=settings.voice_media_timeout,
        offline=engine,
    )
    return demo, registry


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "websockets", "aioice", "aiortc", "openai", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    load_dotenv(".env", override=False)  # the environment wins over .env
    settings = load_settings()  # read once; everything below is handed what it needs
    host, port = args.host or settings.host, args.port or settings.port
    log.info("provider: %s", settings.realtime.label)
    demo, _registry = create_app(settings, host, args.share, args.debug)
    demo.queue(default_concurrency_limit=None)
    auth = settings.login
    if args.share and auth is None:
        log.warning("共有リンクにログインが設定されていません。リンクを知っている人は誰でもあなたの API 枠を使えます。"
                    "APP_USERNAME と APP_PASSWORD を設定してください。")
    demo.launch(server_name=host, server_port=port, share=args.share, prevent_thread_lock=True,
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
