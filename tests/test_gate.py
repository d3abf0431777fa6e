"""The response gate on its own: one response at a time, each typed message answered by its own
response, answers recognised with or without echoed metadata, and no request waiting forever."""

from __future__ import annotations

import asyncio

import pytest

from conversation.gate import GiveUp, Request, ResponseGate


class Wire:
    """Follows the gate's decisions as the conversation does, recording each request it would send."""

    def __init__(self, gate: ResponseGate) -> None:
        self.gate = gate
        self.sent: list[Request] = []
        self.given_up: list[Request] = []

    async def follow(self) -> None:
        async for decision in self.gate.decisions():
            if isinstance(decision, GiveUp):
                self.given_up.append(decision.request)
            else:
                self.sent.append(decision)


@pytest.fixture
async def wire():
    wire = Wire(ResponseGate(created_timeout=0.3))
    gate = wire.gate
    runner = asyncio.create_task(wire.follow())
    gate.connected()
    yield wire
    runner.cancel()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_response_at_a_time_and_tool_results_coalesce(wire):
    gate = wire.gate
    gate.request({"t1"})
    await settle()
    gate.request({"t2"})
    gate.request({"t3"}, tools_allowed=False)
    await settle()
    assert len(wire.sent) == 1
    assert gate.on_response_created("r1", wire.sent[0].request_id) == {"t1"}
    gate.on_response_done("r1")
    await settle()
    assert len(wire.sent) == 2 and wire.sent[1].tools_allowed  # one of the merged requests allowed tools
    assert gate.on_response_created("r2", wire.sent[1].request_id) == {"t2", "t3"}


async def test_typed_messages_are_answered_one_by_one_in_order(wire):
    gate = wire.gate
    for turn in ("m1", "m2", "m3"):
        gate.request({turn}, separate=True)
    answered = []
    for n in range(3):
        await settle()
        assert len(wire.sent) == n + 1
        answered.append(gate.on_response_created(f"r{n}", wire.sent[n].request_id))
        gate.on_response_done(f"r{n}")
    assert answered == [{"m1"}, {"m2"}, {"m3"}]


async def test_without_echoed_metadata_the_next_response_is_ours(wire):
    gate = wire.gate
    gate.request({"m1"}, separate=True)
    gate.request({"m2"}, separate=True)
    await settle()
    assert gate.on_response_created("r1") == {"m1"}
    gate.on_response_done("r1")
    await settle()
    assert gate.on_response_created("r2") == {"m2"}


async def test_without_metadata_a_committed_voice_turn_gets_the_services_response(wire):
    gate = wire.gate
    gate.on_speech_started()
    gate.on_speech_stopped()
    gate.request({"m1"}, separate=True)
    await asyncio.sleep(0.6)  # past the grace: our request goes out while the voice turn is pending
    assert len(wire.sent) == 1
    assert gate.on_response_created("vad") == set()  # the service's own answer comes first
    gate.on_response_done("vad")
    await settle()
    assert gate.on_response_created("r1") == {"m1"}


async def test_a_request_never_answered_is_asked_again_then_given_up(wire):
    gate = wire.gate
    gate.request({"m1"}, separate=True)
    await asyncio.sleep(0.45)
    assert len(wire.sent) == 2 and wire.sent[0] is wire.sent[1]  # asked again after the timeout
    await asyncio.sleep(0.5)
    assert len(wire.sent) == 3
    assert [r.causes for r in wire.given_up] == [{"m1"}]
    gate.request({"m2"}, separate=True)  # the gate is not stuck
    await settle()
    assert len(wire.sent) == 4


async def test_a_late_answer_to_a_retried_request_is_still_recognised(wire):
    gate = wire.gate
    gate.request({"m1"}, separate=True)
    await settle()
    first_id = wire.sent[0].request_id
    await asyncio.sleep(0.35)  # timed out and sent again under a new id
    assert len(wire.sent) == 2
    assert gate.on_response_created("r1", first_id) == {"m1"}
    gate.on_response_done("r1")
    gate.request({"m2"}, separate=True)
    await settle()
    assert gate.on_response_created("r2") == {"m2"}


async def test_waits_while_the_user_speaks_and_for_the_services_own_response(wire):
    gate = wire.gate
    gate.on_speech_started()
    gate.request({"t1"})
    await settle()
    assert wire.sent == []
    gate.on_speech_stopped()
    await settle()
    assert wire.sent == []  # the service gets a moment to start its own answer to the voice turn
    assert gate.on_response_created("vad") == set()
    await asyncio.sleep(0.6)
    assert wire.sent == []  # not while that answer is active
    gate.on_response_done("vad")
    await settle()
    assert len(wire.sent) == 1


async def test_recovers_from_a_collision_without_losing_the_request(wire):
    gate = wire.gate
    gate.request({"t1"})
    await settle()
    gate.on_active_response_error()  # a response we had not seen yet was active
    gate.on_response_created("other")
    await settle()
    assert len(wire.sent) == 1
    gate.on_response_done("other")
    await settle()
    assert len(wire.sent) == 2
    assert gate.on_response_created("r2", wire.sent[1].request_id) == {"t1"}


async def test_a_drop_loses_the_active_response_and_resends_what_was_in_flight(wire):
    gate = wire.gate
    gate.request({"m1"}, separate=True)
    await settle()
    gate.on_response_created("r1")
    gate.request({"m2"}, separate=True)
    assert gate.disconnected() == "r1"
    gate.connected()
    await settle()
    assert len(wire.sent) == 2 and wire.sent[1].causes == {"m2"}


async def test_a_request_that_cannot_be_sent_waits_for_the_next_connection():
    """A send that fails at once (the socket is gone) is not retried in a loop that starves everything else."""
    gate = ResponseGate(created_timeout=0.3)
    tries: list[tuple[set[str], int]] = []  # (causes, attempt) of each send tried

    async def follow_without_a_connection() -> None:
        async for decision in gate.decisions():
            if isinstance(decision, Request):
                tries.append((set(decision.causes), decision.attempts))
                gate.unsent(decision)

    runner = asyncio.create_task(follow_without_a_connection())
    try:
        gate.connected()
        gate.request({"m1"}, separate=True)
        await asyncio.sleep(0.2)  # returns at all only if the gate let the loop breathe
        assert len(tries) == 1
        gate.connected()  # the next connection: the request goes again, first, with its attempt not counted
        await asyncio.sleep(0.05)
        assert tries == [({"m1"}, 1), ({"m1"}, 1)]
    finally:
        runner.cancel()
