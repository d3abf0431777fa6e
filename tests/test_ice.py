"""ICE servers: none on loopback, TURN credentials fetched per connection elsewhere, failures said clearly."""

from __future__ import annotations

import asyncio
import time

import pytest

from settings import load_settings
from web import ice

NO_RELAY = load_settings({}).relay


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_uses_no_ice_servers(host):
    assert ice.ice_servers(host, False, NO_RELAY) == ({"iceServers": []}, {"iceServers": []})


def test_remote_without_credentials_falls_back_to_fastrtc_defaults():
    assert ice.ice_servers("0.0.0.0", False, NO_RELAY) == (None, None)


@pytest.mark.parametrize("env", [{"HF_TOKEN": "hf_placeholder"}, {"CLOUDFLARE_TURN_KEY_ID": "k"},
                                 {"TWILIO_ACCOUNT_SID": "AC0", "TWILIO_AUTH_TOKEN": "t"}])
def test_space_or_share_fetches_relay_credentials_per_connection(env):
    relay = load_settings(env).relay
    for on_space, share in ((True, False), (False, True)):
        rtc, server = ice.ice_servers("127.0.0.1", share, relay, on_space=on_space)
        assert callable(rtc) and server is None
        assert asyncio.iscoroutinefunction(rtc)


async def test_unreachable_relay_service_is_a_clear_message_not_a_hang(monkeypatch):
    settings = load_settings({"HF_TOKEN": "hf_placeholder", "SPACE_ID": "someone/space"})
    monkeypatch.setattr(ice, "RELAY_TIMEOUT_SECONDS", 3.0)
    rtc, _ = ice.ice_servers(settings.host, False, settings.relay, on_space=settings.on_space)
    assert settings.host == "0.0.0.0"  # a Space listens on every interface
    started = time.monotonic()
    with pytest.raises(ice.RelayUnavailable, match="TURN") as caught:
        await rtc()  # the real fastrtc call; this machine cannot reach Cloudflare
    assert time.monotonic() - started < 15  # bounded (a DNS lookup in a worker thread may outlive the timeout)
    assert "hf_placeholder" not in str(caught.value)
