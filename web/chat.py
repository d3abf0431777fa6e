"""The conversation's messages as `gr.Chatbot(type="messages")` wants them: the domain's typed messages in words."""

from __future__ import annotations

from collections.abc import Iterable

from conversation.transcript import Message
from web.labels import INTERRUPTED_SUFFIX, PENDING_SPEECH, UNHEARD_SPEECH


def message_text(message: Message, pending: str = PENDING_SPEECH) -> str:
    """What a message says: its text, or why there is none, marked when the user cut the answer short."""
    text = pending if message.pending else UNHEARD_SPEECH if message.unheard else message.text
    return text + INTERRUPTED_SUFFIX if message.interrupted else text


def chatbot_messages(messages: Iterable[Message]) -> list[dict[str, str]]:
    """Role and content of each message that has something to show (an answer not begun yet has not)."""
    return [{"role": m.role, "content": text} for m in messages if (text := message_text(m))]
