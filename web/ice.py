"""ICE servers for WebRTC: none on loopback, TURN (Twilio or Cloudflare via HF_TOKEN) elsewhere."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from settings import RelaySettings

log = logging.getLogger(__name__)

NO_ICE: dict[str, Any] = {"iceServers": []}
RELAY_TIMEOUT_SECONDS = 10.0


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RelayUnavailable(RuntimeError):
    """Credentials for a TURN server could not be fetched (message for the UI)."""


async def twilio_credentials(relay: RelaySettings) -> dict[str, Any]:
    from fastrtc import get_twilio_turn_credentials

    return await asyncio.to_thread(get_twilio_turn_credentials, relay.twilio_account_sid, relay.twilio_auth_token)


async def cloudflare_credentials(relay: RelaySettings) -> dict[str, Any]:
    from fastrtc import get_cloudflare_turn_credentials_async

    # "" rather than None: fastrtc would otherwise look in the environment itself.
    return await get_cloudflare_turn_credentials_async(relay.cloudflare_key_id, relay.cloudflare_key_token,
                                                       hf_token=relay.hf_token)


def ice_servers(host: str, share: bool, relay: RelaySettings,
                on_space: bool = False) -> tuple[Any, dict[str, Any] | None]:
    """(browser's rtc_configuration, server's) for where the app is served."""
    remote = share or on_space or not is_loopback(host)
    if not remote:
        return NO_ICE, NO_ICE  # connects in ~0.3 s and makes no outbound lookup
    if relay.twilio_account_sid and relay.twilio_auth_token:
        fetch = twilio_credentials
    elif relay.hf_token or relay.cloudflare_key_id:
        fetch = cloudflare_credentials
    else:
        log.warning("No TURN credentials (HF_TOKEN or TWILIO_*): voice may fail across networks.")
        return None, None

    async def rtc_configuration() -> dict[str, Any]:
        # Called for every connection, so short-lived credentials are always fresh.
        try:
            async with asyncio.timeout(RELAY_TIMEOUT_SECONDS):
                return await fetch(relay)
        except Exception as exc:
            log.error("TURN credentials unavailable: %s", type(exc).__name__)
            message = "TURN サーバーの認証情報を取得できませんでした。HF_TOKEN などの設定を確認してください。"
            raise RelayUnavailable(message) from None

    return rtc_configuration, None
