"""ICE servers for WebRTC: none on loopback, TURN (Twilio or Cloudflare via HF_TOKEN) elsewhere."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from settings import TurnSettings

log = logging.getLogger(__name__)

NO_ICE: dict[str, Any] = {"iceServers": []}
TURN_TIMEOUT_SECONDS = 10.0


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TurnUnavailable(RuntimeError):
    """Credentials for a TURN server could not be fetched (message for the UI)."""


async def twilio_credentials(turn: TurnSettings) -> dict[str, Any]:
    from fastrtc import get_twilio_turn_credentials

    return await asyncio.to_thread(get_twilio_turn_credentials, turn.twilio_account_sid, turn.twilio_auth_token)


async def cloudflare_credentials(turn: TurnSettings) -> dict[str, Any]:
    from fastrtc import get_cloudflare_turn_credentials_async

    # "" rather than None: fastrtc would otherwise look in the environment itself.
    return await get_cloudflare_turn_credentials_async(turn.cloudflare_key_id, turn.cloudflare_key_token,
                                                       hf_token=turn.hf_token)


def ice_servers(host: str, share: bool, turn: TurnSettings,
                on_space: bool = False) -> tuple[Any, dict[str, Any] | None]:
    """(browser's rtc_configuration, server's) for where the app is served."""
    remote = share or on_space or not is_loopback(host)
    if not remote:
        return NO_ICE, NO_ICE  # connects in ~0.3 s and makes no outbound lookup
    if turn.twilio_account_sid and turn.twilio_auth_token:
        fetch = twilio_credentials
    elif turn.hf_token or turn.cloudflare_key_id:
        fetch = cloudflare_credentials
    else:
        log.warning("No TURN credentials (HF_TOKEN or TWILIO_*): voice may fail across networks.")
        return None, None

    async def rtc_configuration() -> dict[str, Any]:
        # Called for every connection, so short-lived credentials are always fresh.
        try:
            async with asyncio.timeout(TURN_TIMEOUT_SECONDS):
                return await fetch(turn)
        except Exception as exc:
            log.error("TURN credentials unavailable: %s", type(exc).__name__)
            message = "TURN サーバーの認証情報を取得できませんでした。HF_TOKEN などの設定を確認してください。"
            raise TurnUnavailable(message) from None

    return rtc_configuration, None
