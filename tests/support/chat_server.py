"""A local stand-in for a Chat Completions server (Ollama, llama.cpp, LM Studio, vLLM) on a real socket.

It answers `POST /v1/chat/completions` with `stream: true` as Server-Sent Events in HTTP/1.1
chunked encoding, the way those servers do, from a `Reply` a test chooses per request: text
pieces, tool calls whose arguments arrive in fragments, a pause (`hold`), or a connection that
drops in the middle of a chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    text: list[str] = field(default_factory=list)  # content pieces, streamed in order
    calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments), arguments in 3 fragments
    hold_before: int | None = None  # wait for `ChatServer.release` before sending this text piece
    drop_after: int | None = None  # after this many events, cut the connection in the middle of a chunk


def _event(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 0, "model": "stand-in",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def events_of(reply: Reply) -> list[dict[str, Any]]:
    events = [_event({"role": "assistant", "content": piece}) for piece in reply.text]
    for index, (name, arguments) in enumerate(reply.calls):
        events.append(_event({"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function",
                                              "function": {"name": name, "arguments": ""}}]}))
        step = max(1, len(arguments) // 3)
        for start in range(0, len(arguments), step):
            events.append(_event({"tool_calls": [{"index": index,
                                                  "function": {"arguments": arguments[start : start + step]}}]}))
    events.append(_event({}, "tool_calls" if reply.calls else "stop"))
    return events


class ChatServer:
    """`answer(request_body) -> Reply` decides each response; `requests` keeps every body received."""

    def __init__(self, answer: Callable[[dict[str, Any]], Reply]) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.held = asyncio.Event()  # set while a reply waits at `hold_before`
        self.left_early = 0  # clients that hung up before the reply ended (barge-in)
        self.errors: list[Exception] = []  # what a test's `answer` raised
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}
            body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))) or b"{}")
            if not request_line.startswith("POST /v1/chat/completions"):
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            self.requests.append(body)
            await self._stream(reader, writer, self.answer(body))
        except (ConnectionError, asyncio.IncompleteReadError):
            self.left_early += 1
        except Exception as exc:  # a test's `answer` failed: say so instead of hanging up silently
            self.errors.append(exc)
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: Reply) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n")
        for sent, event in enumerate(events_of(reply)):
            if reply.drop_after is not None and sent == reply.drop_after:
                data = f"data: {json.dumps(event)}\n\n".encode()
                writer.write(f"{len(data):x}\r\n".encode() + data[: len(data) // 2])
                await writer.drain()
                writer.transport.abort()  # mid-chunk: the client sees an incomplete body
                return
            if reply.hold_before is not None and sent == reply.hold_before:
                self.held.set()
                hung_up = asyncio.ensure_future(reader.read(1))  # b"" once the client closes
                released = asyncio.ensure_future(self.release.wait())
                await asyncio.wait([hung_up, released], return_when=asyncio.FIRST_COMPLETED)
                hung_up.cancel()
                released.cancel()
                self.held.clear()
                if not self.release.is_set():
                    self.left_early += 1
                    return
            await self._chunk(writer, f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
            await asyncio.sleep(0.01)
        await self._chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()
