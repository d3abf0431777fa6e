"""ICE servers: none on loopback, TURN credentials fetched per connection elsewhere, failures said clearly."""

from __future__ import annotations

import asyncio
import time

import pytest

from web import ice


@pytest.fixture(autouse=True)
def no_turn_env(monkeypatch):
    for name in ("SPACE_ID", "HF_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "CLOUDFLARE_TURN_KEY_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_uses_no_ice_servers(host):
    assert ice.ice_servers(host, share=False) == ({"iceServers": []}, {"iceServers": []})


def test_remote_without_credentials_falls_back_to_fastrtc_defaults():
    assert ice.ice_servers("0.0.0.0", share=False) == (None, None)


@pytest.mark.parametrize(("env", "fetch"), [({"HF_TOKEN": "hf_placeholder"}, "cloudflare_credentials"),
                                            ({"TWILIO_ACCOUNT_SID": "AC0", "TWILIO_AUTH_TOKEN": "t"},
                                             "twilio_credentials")])
def test_space_or_share_fetches_turn_credentials_per_connection(monkeypatch, env, fetch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rtc, server = ice.ice_servers("127.0.0.1", share=True)
    assert callable(rtc) and server is None
    assert asyncio.iscoroutinefunction(rtc)


async def test_unreachable_turn_service_is_a_clear_message_not_a_hang(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_placeholder")
    monkeypatch.setenv("SPACE_ID", "someone/space")
    monkeypatch.setattr(ice, "TURN_TIMEOUT_SECONDS", 3.0)
    rtc, _ = ice.ice_servers("0.0.0.0", share=False)
    started = time.monotonic()
    with pytest.raises(ice.TurnUnavailable, match="TURN") as caught:
        await rtc()  # the real fastrtc call; this machine cannot reach Cloudflare
    assert time.monotonic() - started < 15  # bounded (a DNS lookup in a worker thread may outlive the timeout)
    assert "hf_placeholder" not in str(caught.value)
