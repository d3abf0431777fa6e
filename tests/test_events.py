"""Server events are parsed once, at the edge, into typed values (audio decoded there); what the
conversation cannot use is refused there with a reason."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from realtime.events import (
    AnswerAudio,
    ItemAdded,
    MalformedEvent,
    ResponseCreated,
    ResponseDone,
    ServiceError,
    UserTranscript,
    parse,
)


def test_audio_is_decoded_at_the_edge() -> None:
    pcm = np.array([0, 1000, -1000, 32767], dtype=np.int16)
    event = parse({"type": "response.output_audio.delta", "item_id": "item_1", "response_id": "resp_1",
                   "delta": base64.b64encode(pcm.tobytes()).decode()})
    assert isinstance(event, AnswerAudio) and event.item_id == "item_1"
    assert event.pcm.dtype == np.int16 and event.pcm.tolist() == pcm.tolist()


def test_items_carry_their_text_voice_phase_and_call() -> None:
    spoken = parse({"type": "conversation.item.added", "previous_item_id": "item_0",
                    "item": {"id": "item_1", "type": "message", "role": "user",
                             "content": [{"type": "input_audio", "transcript": None}]}})
    assert isinstance(spoken, ItemAdded) and spoken.previous_item_id == "item_0"
    assert spoken.item.voice and spoken.item.text == "" and spoken.item.role == "user"
    done = parse({"type": "response.done", "response": {
        "id": "resp_1", "status": "completed", "usage": {"total_tokens": 7},
        "output": [{"id": "item_2", "type": "message", "role": "assistant", "phase": "commentary",
                    "content": [{"type": "output_audio", "transcript": "調べます"}]},
                   {"id": "item_3", "type": "function_call", "call_id": "call_1", "name": "search_database",
                    "arguments": "{\"query\": \"納期\"}", "status": "completed"}]}})
    assert isinstance(done, ResponseDone) and done.usage == {"total_tokens": 7}
    preamble, call = done.output
    assert (preamble.phase, preamble.text) == ("commentary", "調べます")
    assert (call.call_id, call.name, call.status) == ("call_1", "search_database", "completed")


def test_our_request_id_is_read_from_the_metadata_when_echoed() -> None:
    tagged = parse({"type": "response.created", "response": {"id": "resp_1", "metadata": {"request_id": "req_4"}}})
    plain = parse({"type": "response.created", "response": {"id": "resp_2", "metadata": None}})
    assert tagged == ResponseCreated("resp_1", "req_4") and plain == ResponseCreated("resp_2", "")


def test_errors_and_failures_keep_the_services_words() -> None:
    assert parse({"type": "error", "error": {"code": "x", "message": "bad"}}) == ServiceError("x", "bad")
    assert parse({"type": "error"}) == ServiceError("", "")
    failed = parse({"type": "conversation.item.input_audio_transcription.failed", "item_id": "item_1",
                    "error": {"message": "model missing"}})
    assert failed == UserTranscript("item_1", failed=True, reason="model missing")


def test_events_the_conversation_does_not_handle_are_none() -> None:
    assert parse({"type": "rate_limits.updated", "rate_limits": []}) is None


@pytest.mark.parametrize("raw, reason", [
    ({"delta": "AAAA"}, "no type"),
    ({"type": "response.created", "response": {}}, "response.created.response without id"),
    ({"type": "response.done"}, "response.done without response"),
    ({"type": "response.output_item.added", "item": "not an object"}, "response.output_item.added without item"),
    ({"type": "response.output_audio.delta", "delta": "AAAA"}, "response.output_audio.delta without item_id"),
    ({"type": "response.output_audio.delta", "item_id": "i", "delta": "%%%"}, "not base64 PCM16 audio"),
])
def test_what_cannot_be_used_is_refused_with_a_reason(raw, reason) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        parse(raw)
