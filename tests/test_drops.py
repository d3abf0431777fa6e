"""A typed message sent at the moment the service connection drops is delivered after the reconnect and
answered in full, wherever the drop falls: the local Realtime server cuts its connection (no close frame)
at an exact point of the exchange, in both dialects, and through `/chat`."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import API_KEY, ToneVoice, settings_for
from gradio_client import Client
from support.apphost import running_app
from support.service import CutPoint, InstrumentedServer

from benchmarks.soak_cuts import CUT_POSITIONS
from benchmarks.soak_flaps import HistoryAssistant, app_behind_flaps, chat_messages
from conversation.conversation import Conversation
from conversation.gate import GiveUp, ResponseGate
from offline.engine import Say
from offline.speech import EnergySpeechDetector
from web.chat import chatbot_messages

LONG = "これは途中で切れるかもしれない長めの答えです。" * 4  # ~90 characters: a dozen text deltas
NOTICE = "接続が切れたため再接続しています"
ANSWER_LIMIT_SECONDS = 10.0

def long_answers() -> HistoryAssistant:
    return HistoryAssistant({r"^(質問.*)$": lambda m: [Say(f"{m.group(1)}への答え:{LONG}")]})


def expected(question: str) -> str:
    return f"{question}への答え:{LONG}"


@pytest.fixture
async def served():
    server = InstrumentedServer(long_answers, ToneVoice, lambda: EnergySpeechDetector(threshold=500.0), api_key=API_KEY,
                                speed=8.0)
    await server.start()
    yield server
    await server.stop()


async def answered(conversation: Conversation, question: str) -> tuple[str, float]:
    started = time.monotonic()
    turn = await conversation.send_text(question)
    await asyncio.wait_for(turn.done.wait(), ANSWER_LIMIT_SECONDS)
    assert not turn.unanswered
    return conversation.turn_text(turn), time.monotonic() - started


@pytest.mark.parametrize("flavour", ["azure-ga", "azure-preview"])
@pytest.mark.parametrize("position", list(CUT_POSITIONS))
async def test_a_message_sent_as_the_connection_drops_is_answered_whole_after_the_reconnect(
        served, flavour, position):
    conversation = Conversation(settings_for(served, flavour))
    conversation.start()
    try:
        assert await conversation.wait_connected(5)
        assert (await answered(conversation, "質問0"))[0] == expected("質問0")  # a normal answer first
        types, sent, after, skip = CUT_POSITIONS[position]
        cut = served.cut_at(CutPoint(types, sent=sent, after=after, skip=skip))
        text, _ = await answered(conversation, "質問1")
        assert text == expected("質問1")  # the whole answer, once: not the notice, not a fragment
        assert cut.reached.is_set() and len(served.connections) == 2, "the connection was really cut there"
        chat = [(m["role"], m["content"]) for m in chatbot_messages(conversation.snapshot().messages)]
        assert chat == [("user", "質問0"), ("assistant", expected("質問0")),
                        ("user", "質問1"), ("assistant", expected("質問1"))]
        # The new service session got the message once (replayed or sent) and was asked for its answer.
        again = served.connections[1]
        texts = [e["item"].get("content", [{}])[0].get("text") for e in again.of_type("conversation.item.create")]
        assert texts.count("質問1") == 1 and again.of_type("response.create")
        assert (await answered(conversation, "質問2"))[0] == expected("質問2")  # and the conversation goes on
    finally:
        await conversation.close()


@pytest.mark.parametrize("flavour", ["azure-ga", "azure-preview"])
async def test_a_message_typed_just_as_the_connection_closes_is_answered_after_the_reconnect(served, flavour):
    conversation = Conversation(settings_for(served, flavour))
    conversation.start()
    try:
        assert await conversation.wait_connected(5)
        drop = asyncio.ensure_future(served.drop_all())
        text, _ = await answered(conversation, "質問1")  # sent before the client has noticed the drop
        await drop
        assert text == expected("質問1") and len(served.connections) == 2
    finally:
        await conversation.close()


def test_chat_returns_the_answer_not_the_reconnect_notice_when_the_drop_follows_response_created():
    with running_app("azure-ga", long_answers()) as app:
        client = Client(app.url, verbose=False)
        assert client.predict("質問0", api_name="/chat") == expected("質問0")
        app.server.cut = CutPoint(("response.created",), sent=True, after=True)
        started = time.monotonic()
        reply = client.predict("質問1", api_name="/chat")
        assert app.server.cut.reached.is_set() and len(app.server.connections) == 2
        assert reply == expected("質問1") and NOTICE not in reply
        assert time.monotonic() - started < ANSWER_LIMIT_SECONDS


async def test_a_request_that_drops_before_response_created_again_and_again_is_never_given_up():
    gate = ResponseGate(created_timeout=0.2)
    sent, given_up = [], []

    async def follow() -> None:
        async for decision in gate.decisions():
            if isinstance(decision, GiveUp):
                given_up.append(decision.request)
            else:
                sent.append(decision)

    runner = asyncio.create_task(follow())
    try:
        gate.connected()
        gate.request({"t1"}, separate=True)
        for attempt in range(1, 5):  # more drops in a row than the attempts a silent service gets
            await asyncio.sleep(0.05)
            assert len(sent) == attempt and sent[-1].causes == {"t1"}  # asked (again) on each new connection
            gate.disconnected()  # the drop takes the request with it ...
            await asyncio.sleep(0.4)  # ... and the reconnect takes longer than the created timeout
            assert given_up == []  # a drop is not the service failing to answer
            gate.connected()
        await asyncio.sleep(0.05)
        assert gate.on_response_created("resp_1", sent[-1].request_id) == {"t1"}
    finally:
        runner.cancel()


def test_30_api_messages_through_a_drop_every_3_seconds_are_all_answered_in_full():
    with app_behind_flaps(3.0, record=True) as (app, server):
        figures = chat_messages(app.url, 30, max_gap=0.6, limit=ANSWER_LIMIT_SECONDS, seed=7)
        figures.connections = len(server.connections)
    drops = figures.connections - 1
    print(figures.line("30 messages, a drop every 3 s"))
    assert drops >= 4, "the service really dropped the connection several times"
    assert figures.complete == figures.sent == 30, figures.unanswered
    assert max(figures.latencies) < ANSWER_LIMIT_SECONDS, figures.latencies


@pytest.mark.parametrize("flavour", ["azure-ga", "azure-preview"])
async def test_a_spoken_answer_cut_mid_way_is_said_again_whole(served, flavour):
    conversation = Conversation(settings_for(served, flavour))
    conversation.voice_attached = True  # a call listens: answers are audio with their transcript
    conversation.start()
    try:
        assert await conversation.wait_connected(5)
        cut = served.cut_at(CutPoint(("response.output_audio.delta", "response.audio.delta"), sent=True, after=True,
                                     skip=2))
        text, _ = await answered(conversation, "質問1")
        assert text == expected("質問1") and cut.reached.is_set()
        assert conversation.interruptions == 0  # not a barge-in: nothing is truncated on the new session
        again = served.connections[1]
        assert not again.of_type("conversation.item.truncate") and not again.sent_of_type("error")
        # The replayed history holds the question once and no fragment of the lost answer.
        replayed = [e["item"] for e in again.of_type("conversation.item.create")]
        assert [i.get("role") for i in replayed] == ["user"]
    finally:
        await conversation.close()
