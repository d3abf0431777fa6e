"""What the conversation has to tell the user besides the chat, as typed values: web/ words them.

One notice at a time (the latest wins); `None` when there is nothing to say. A notice carries only
data a user may see: setting names, a status code, the service's own error message — never a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from realtime.connection import ConnectError, ConnectFailure


class NoticeKind(StrEnum):
    NOT_CONFIGURED = "not_configured"  # `names`: the settings to add to .env
    CONNECT_FAILED = "connect_failed"  # `failure` and `detail` (a status code, an exception's type)
    RECONNECTING = "reconnecting"  # the connection dropped; the conversation carries over
    RECONNECTED = "reconnected"
    NO_ANSWER = "no_answer"  # the service never answered a request
    NOT_HEARD = "not_heard"  # `detail`: why the speech could not be transcribed (the service's words)
    SERVICE_ERROR = "service_error"  # `detail`: the service's error message, else its code
    SHARED_STORE_DOWN = "shared_store_down"  # Redis unreachable: the conversation goes on in this replica


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    detail: str = ""
    names: tuple[str, ...] = ()
    failure: ConnectFailure | None = None


def connect_failed(error: ConnectError) -> Notice:
    return Notice(NoticeKind.CONNECT_FAILED, error.detail, failure=error.failure)
