"""A real WebRTC peer (aiortc) that talks to the app's FastRTC component as a browser would."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import uuid

import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from av import AudioFrame

from audio import resample

RATE = 48_000
FRAME = 960  # 20 ms at 48 kHz, as a browser sends


class ScriptedMicrophone(MediaStreamTrack):
    """Plays a 24 kHz int16 script (then silence) in real time as 48 kHz 20 ms frames."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._samples = np.zeros(0, np.int16)
        self._pts = 0
        self._start: float | None = None
        self._stalled = False

    def play(self, pcm_24k: np.ndarray) -> None:
        self._samples = np.concatenate([self._samples, resample(pcm_24k, 24_000, RATE)])

    def stall(self) -> None:
        """Send nothing more, while the connection stays up (a caller whose network or machine froze)."""
        self._stalled = True

    async def recv(self) -> AudioFrame:
        if self._stalled:
            await asyncio.get_running_loop().create_future()  # forever: until the connection closes
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        wait = self._start + self._pts / RATE - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = np.zeros(FRAME, np.int16)
        take = min(FRAME, self._samples.size)
        chunk[:take] = self._samples[:take]
        self._samples = self._samples[take:]
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._pts, fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


class VoiceClient:
    """Connect to the app's WebRTC component, send microphone audio, collect what comes back."""

    def __init__(self, base_url: str, session_hash: str | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.session_hash = session_hash or uuid.uuid4().hex[:11]
        self.webrtc_id = uuid.uuid4().hex[:12]
        self.microphone = ScriptedMicrophone()
        self.received: list[tuple[float, np.ndarray]] = []  # (arrival time, 48 kHz mono samples of a frame)
        self.messages: list[dict] = []  # what the server said on the data channel
        self.pc = RTCPeerConnection()
        self._http = httpx.AsyncClient(timeout=10)
        self._tasks: list[asyncio.Task] = []
        self._app_config: dict | None = None

    async def connect(self) -> dict:
        """Offer/answer through the component server; returns the server's JSON (may say failed)."""
        config = await self._config()
        component = next(c["id"] for c in config["components"] if c.get("type") == "webrtc")
        # Every event on the component's tick runs when the server asks for input, as in a browser.
        ticks = [d["id"] for d in config["dependencies"] if [component, "tick"] in d["targets"]]
        channel = self.pc.createDataChannel("text")
        channel.on("message", lambda message: self._on_message(message, ticks))
        self.pc.addTrack(self.microphone)
        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"session_hash": self.session_hash, "component_id": component, "fn_name": "offer",
                "data": {"sdp": self.pc.localDescription.sdp, "type": "offer", "webrtc_id": self.webrtc_id}}
        answer = (await self._http.post(f"{self.base}/gradio_api/component_server", json=body)).json()
        if answer.get("sdp"):
            await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        return answer

    async def _config(self) -> dict:
        if self._app_config is None:
            self._app_config = (await self._http.get(f"{self.base}/config")).json()
        return self._app_config

    def _on_message(self, message: str, ticks: list[int]) -> None:
        self.messages.append(json.loads(message))
        if self.messages[-1].get("type") == "send_input":
            for tick in ticks:
                self._tasks.append(asyncio.ensure_future(self._join(tick, [{"webrtc_id": self.webrtc_id}])))

    async def _join(self, fn_index: int, data: list) -> str:
        """Queue an event of this page (session hash) as the browser does; returns its event id."""
        response = await self._http.post(f"{self.base}/gradio_api/queue/join",
                                         json={"data": data, "fn_index": fn_index, "session_hash": self.session_hash,
                                               "event_data": None, "trigger_id": None})
        return response.json()["event_id"]

    async def call(self, api_name: str, *data: object) -> object:
        """Run one of the app's API endpoints in this page's session and return its output."""
        config = await self._config()
        fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)
        event_id = await self._join(fn_index, list(data))
        url = f"{self.base}/gradio_api/queue/data"
        async with self._http.stream("GET", url, params={"session_hash": self.session_hash}) as stream:
            async for line in stream.aiter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                    return message["output"]
        raise AssertionError(f"{api_name} did not complete")

    @contextlib.asynccontextmanager
    async def page_open(self):
        """Hold the page's heartbeat stream, as an open browser tab does; leaving the block closes the page
        (Gradio runs the page's unload events when this stream ends)."""
        async with self._http.stream("GET", f"{self.base}/gradio_api/heartbeat/{self.session_hash}") as stream:
            lines = stream.aiter_lines()  # kept: a dropped iterator is finalized, and that closes the stream
            await anext(lines)  # the first "ALIVE": the server holds the page as open
            yield

    def _on_track(self, track: MediaStreamTrack) -> None:
        async def collect() -> None:
            with contextlib.suppress(Exception):
                while True:
                    frame = await track.recv()
                    arrived = asyncio.get_running_loop().time()
                    # Packed s16: channels interleaved; keep the first, at 48 kHz.
                    channels = len(frame.layout.channels)
                    self.received.append((arrived, frame.to_ndarray().reshape(-1)[::channels].copy()))

        self._tasks.append(asyncio.ensure_future(collect()))

    def received_audio(self, since: float = 0.0, until: float = float("inf")) -> np.ndarray:
        """What the speaker got between two loop times (int16 samples as decoded)."""
        chunks = [samples for at, samples in self.received if since <= at < until]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()
