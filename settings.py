"""Settings read once from the environment (after `.env` is loaded in `main`): connection, voice, tools, server."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

log = logging.getLogger(__name__)

Provider = Literal["azure", "openai", "offline", "none"]
Dialect = Literal["ga", "preview"]
TurnDetection = Literal["server_vad", "semantic_vad"]
# Allowed values, as the openai SDK's types spell them (types/realtime/realtime_audio_input_turn_detection.py,
# noise_reduction_type.py, realtime_reasoning_effort.py).
TURN_DETECTIONS: tuple[str, ...] = get_args(TurnDetection)
VAD_EAGERNESS = ("low", "medium", "high", "auto")
NOISE_REDUCTIONS = ("near_field", "far_field", "off")
REASONING_EFFORTS = ("minimal", "low", "medium", "high", "xhigh")

DEFAULT_INSTRUCTIONS = (
    "あなたは親切で簡潔な日本語の音声アシスタントです。ユーザーとは日本語で会話してください"
    "（ユーザーが英語で話しかけた場合は英語で答えてください）。"
    "天気の質問には get_weather ツールを使い、正確な情報を伝えてください。"
    "調べものやデータベース検索の依頼には search_database ツールを使ってください。"
    "search_database は時間のかかる処理です。開始したら「検索を開始しました。他に何かお手伝いできることは"
    "ありますか？」のように伝え、結果を待たずに会話を続けてください。結果が届いたら要点を短く伝えてください。"
    "音声で聞きやすいよう、一度の返答は二、三文にまとめてください。"
)
# Added to the instructions when the idle timeout is on: the service's own answer to a silence is a check-in.
IDLE_CHECK_IN = ("ユーザーがしばらく黙っているときは、急かしたり責めたりせず、やさしく一言声をかけて、"
                 "続けて話せるように短く促してください。")
# Outside the repo on purpose: a runtime DB must never end up in a commit.
DEFAULT_SEARCH_DB = Path(tempfile.gettempdir()) / "voice-assistant" / "knowledge.sqlite3"
# The sample articles that ship with the app; KNOWLEDGE_DIR points the search at the user's own folder instead.
DEFAULT_KNOWLEDGE_DIR = Path(__file__).resolve().parent / "data" / "knowledge"


@dataclass(frozen=True)
class VoiceSettings:
    """What the session asks of the service: persona, voice, transcription and turn detection."""

    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = "alloy"
    transcription_model: str = "whisper-1"
    transcription_language: str = "ja"
    vad_threshold: float = 0.6
    vad_silence_ms: int = 700
    vad_prefix_padding_ms: int = 300
    # The GA session's newer input options; "" (or 0) means not sent, so the service's own default holds.
    turn_detection: TurnDetection = "server_vad"
    vad_eagerness: str = ""  # semantic_vad only: low / medium / high / auto
    noise_reduction: str = ""  # near_field / far_field / off (off is sent as null: turned off)
    reasoning_effort: str = ""  # reasoning models such as gpt-realtime-2 (GA only)
    idle_timeout_ms: int = 0  # server_vad only (GA): the service checks in after this much silence
    idle_check_in: str = IDLE_CHECK_IN  # how it should check in (joined to the instructions when the timeout is on)


@dataclass(frozen=True)
class RealtimeSettings:
    """Where the realtime session connects. `api_key` is kept out of repr so it never reaches logs."""

    provider: Provider
    dialect: Dialect = "ga"
    model: str = ""
    endpoint: str = ""
    api_version: str = ""
    api_key: str = field(default="", repr=False)
    base_url: str = ""
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    # Long conversations: move to a fresh service session before the service's 60-minute cap, and keep
    # what each response re-bills bounded (GA truncation; items replayed into a fresh session).
    rotate_after: float = 55 * 60
    history_tokens: int = 0  # 0: the service's own limit
    replay_items: int = 100
    # Cost estimates: a JSON price file laid over data/prices.json, and the price row for a deployment name.
    prices_file: str = ""
    price_model: str = ""

    @property
    def label(self) -> str:
        """A short, secret-free description for the status line."""
        if self.provider == "azure":  # no host: the page is public on a Space
            version = "GA" if self.dialect == "ga" else f"プレビュー版 {self.api_version}"
            return f"Azure OpenAI ({self.model}, {version})"
        if self.provider == "openai":
            return f"OpenAI ({self.model})"
        if self.provider == "offline":
            return "オフラインモード"
        return "未設定"

    def with_base_url(self, base_url: str) -> RealtimeSettings:
        return replace(self, base_url=base_url)


@dataclass(frozen=True)
class OfflineSettings:
    """The offline engine: Japanese speech recognition, and a local language model when there is one
    (any Chat Completions server: Ollama, llama.cpp's llama-server, LM Studio, vLLM)."""

    asr_model: str = "base"  # a size name (downloaded once), a model directory, or "none"
    asr_language: str = "ja"
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="local", repr=False)  # local servers ignore it; the SDK wants one

    @property
    def recognition_on(self) -> bool:
        return self.asr_model.lower() not in ("none", "off", "0")

    @property
    def language_model_on(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)


@dataclass(frozen=True)
class RelaySettings:
    """Credentials for a TURN relay server (voice across networks); secrets stay out of repr."""

    hf_token: str = field(default="", repr=False)
    cloudflare_key_id: str = ""
    cloudflare_key_token: str = field(default="", repr=False)
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything the app is configured with. `Settings()` is the all-defaults configuration."""

    realtime: RealtimeSettings = field(default_factory=lambda: RealtimeSettings(provider="none"))
    # Tools
    tool_timeout: float = 60.0  # seconds a call may run; a tool's own `timeout=` wins
    search_latency: float = 20.0  # the original app's slow database, kept so the async flow is visible
    search_db_path: Path = DEFAULT_SEARCH_DB
    knowledge_dir: Path = DEFAULT_KNOWLEDGE_DIR
    forecast_url: str | None = None  # None: Open-Meteo's public API
    geocoding_url: str | None = None
    mcp_config: str = ""  # a JSON file of MCP servers whose tools are offered too
    tool_update_seconds: float = 10.0  # a tool still running this long earns a spoken update (0: never)
    # Browser sessions and voice
    idle_timeout: float = 600.0
    max_voice_sessions: int = 4
    voice_time_limit: float = 900.0
    voice_media_timeout: float = 10.0  # a call whose microphone sends nothing this long is ended (caller gone)
    # Serving
    login: tuple[str, str] | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 7860
    on_space: bool = False
    relay: RelaySettings = field(default_factory=RelaySettings)
    offline: OfflineSettings = field(default_factory=OfflineSettings)
    # Several replicas (deploy/cluster.py): shared state in Redis; empty = one process, everything in memory
    redis_url: str = field(default="", repr=False)  # may carry a password
    redis_ttl: float = 3600.0  # seconds a conversation is kept in Redis after its last change


class _Environment:
    """Reads named values with one rule: empty means unset, and a bad number is a warning and the default."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str = "") -> str:
        return self._environ.get(name, "").strip() or default

    def choice(self, name: str, choices: tuple[str, ...], default: str = "") -> str:
        """One of `choices` (case-insensitive); anything else is a warning and the default."""
        raw = self.text(name)
        if not raw or raw.lower() in choices:
            return raw.lower() or default
        log.warning("%s の値「%s」は %s のいずれでもないため、既定値「%s」を使います"
                    " (%s=%r is not one of %s; using %r)", name, raw, " / ".join(choices), default or "未設定",
                    name, raw, ", ".join(choices), default)
        return default

    def number(self, name: str, default: float, minimum: float = 0.0, maximum: float = math.inf) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not minimum <= value <= maximum:  # NaN fails this too
            ja, en = (f"{minimum:g}〜{maximum:g}", f"{minimum:g}..{maximum:g}") if maximum < math.inf else (
                f"{minimum:g} 以上", f">= {minimum:g}")
            log.warning("%s の値「%s」は %sの数値ではないため、既定値 %g を使います"
                        " (%s=%r is not a number %s; using %g)", name, raw, ja, default, name, raw, en, default)
            return default
        return value


def _voice_settings(env: _Environment) -> VoiceSettings:
    base = VoiceSettings()
    return VoiceSettings(
        instructions=env.text("REALTIME_INSTRUCTIONS", base.instructions),
        voice=env.text("REALTIME_VOICE", base.voice),
        transcription_model=env.text("TRANSCRIPTION_MODEL", base.transcription_model),
        transcription_language=env.text("TRANSCRIPTION_LANGUAGE", base.transcription_language),
        vad_threshold=env.number("VAD_THRESHOLD", base.vad_threshold, maximum=1.0),
        vad_silence_ms=int(env.number("VAD_SILENCE_MS", base.vad_silence_ms)),
        vad_prefix_padding_ms=int(env.number("VAD_PREFIX_PADDING_MS", base.vad_prefix_padding_ms)),
        **_session_options(env, base),
    )


def _session_options(env: _Environment, base: VoiceSettings) -> dict:
    """The GA session's turn detection, noise reduction, reasoning and idle timeout (issue 20)."""
    detection = env.choice("REALTIME_TURN_DETECTION", TURN_DETECTIONS, base.turn_detection)
    eagerness = env.choice("REALTIME_VAD_EAGERNESS", VAD_EAGERNESS)
    idle_seconds = env.number("REALTIME_IDLE_TIMEOUT_SECONDS", 0.0, maximum=3600.0)
    if eagerness and detection != "semantic_vad":
        log.warning("REALTIME_VAD_EAGERNESS は REALTIME_TURN_DETECTION=semantic_vad のときだけ使われます"
                    " (REALTIME_VAD_EAGERNESS applies to semantic_vad only; ignored)")
        eagerness = ""
    if idle_seconds and detection != "server_vad":
        log.warning("REALTIME_IDLE_TIMEOUT_SECONDS は server_vad のときだけ使われます"
                    " (the idle timeout applies to server_vad only; ignored)")
        idle_seconds = 0.0
    return {
        "turn_detection": detection,
        "vad_eagerness": eagerness,
        "noise_reduction": env.choice("REALTIME_NOISE_REDUCTION", NOISE_REDUCTIONS),
        "reasoning_effort": env.choice("REALTIME_REASONING_EFFORT", REASONING_EFFORTS),
        "idle_timeout_ms": round(idle_seconds * 1000),
    }


def _realtime_settings(env: _Environment) -> RealtimeSettings:
    base = RealtimeSettings(provider="none")
    return replace(
        _provider_settings(env),
        rotate_after=env.number("REALTIME_SESSION_ROTATE_SECONDS", base.rotate_after, minimum=1.0),
        history_tokens=int(env.number("REALTIME_HISTORY_TOKENS", base.history_tokens)),
        replay_items=int(env.number("REALTIME_REPLAY_MAX_ITEMS", base.replay_items, minimum=2)),
        prices_file=env.text("REALTIME_PRICES_FILE"),
        price_model=env.text("REALTIME_PRICE_MODEL"),
    )


def _provider_settings(env: _Environment) -> RealtimeSettings:
    """Pick the provider: an explicit REALTIME_PROVIDER, else Azure, else OpenAI, else offline."""
    voice = _voice_settings(env)
    explicit = env.text("REALTIME_PROVIDER").lower()
    azure = [env.text(n) for n in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_DEPLOYMENT")]
    provider = explicit or ("azure" if all(azure) else "openai" if env.text("OPENAI_API_KEY") else "offline")
    if provider == "azure":
        version = env.text("AZURE_OPENAI_API_VERSION", "v1")
        preview = version not in ("v1", "ga", "GA")
        if preview:
            log.warning("Azure のプレビュー版 Realtime API (%s) は 2026-04-30 に廃止されました。GA"
                        " (AZURE_OPENAI_API_VERSION を空か v1) に移行してください (Azure retired the preview"
                        " realtime API on 2026-04-30; GA is the way)", version)
        return RealtimeSettings(
            provider="azure",
            dialect="preview" if preview else "ga",
            model=env.text("AZURE_OPENAI_DEPLOYMENT"),
            endpoint=env.text("AZURE_OPENAI_ENDPOINT"),
            api_version=version,
            api_key=env.text("AZURE_OPENAI_API_KEY"),
            voice=voice,
        )
    if provider == "openai":
        return RealtimeSettings(
            provider="openai",
            model=env.text("OPENAI_REALTIME_MODEL", "gpt-realtime"),
            api_key=env.text("OPENAI_API_KEY"),
            base_url=env.text("OPENAI_BASE_URL"),
            voice=voice,
        )
    if provider == "offline":
        return RealtimeSettings(provider="offline", model="offline-assistant", api_key="offline", voice=voice)
    return RealtimeSettings(provider="none", voice=voice)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from `environ` (default: the process environment, `.env` already loaded)."""
    env = _Environment(os.environ if environ is None else environ)
    base = Settings()
    user, password = env.text("APP_USERNAME"), env.text("APP_PASSWORD")
    on_space = bool(env.text("SPACE_ID"))
    search_db = env.text("SEARCH_DB_PATH")
    return Settings(
        realtime=_realtime_settings(env),
        tool_timeout=env.number("TOOL_TIMEOUT_SECONDS", base.tool_timeout, minimum=0.1),
        search_latency=env.number("SEARCH_LATENCY_SECONDS", base.search_latency),
        search_db_path=Path(search_db) if search_db else base.search_db_path,
        knowledge_dir=_knowledge_dir(env),
        forecast_url=env.text("OPEN_METEO_FORECAST_URL") or None,
        geocoding_url=env.text("OPEN_METEO_GEOCODING_URL") or None,
        mcp_config=env.text("MCP_CONFIG"),
        tool_update_seconds=env.number("TOOL_UPDATE_SECONDS", base.tool_update_seconds),
        idle_timeout=env.number("SESSION_IDLE_TIMEOUT_SECONDS", base.idle_timeout, minimum=1.0),
        max_voice_sessions=int(env.number("MAX_VOICE_SESSIONS", base.max_voice_sessions, minimum=1)),
        voice_time_limit=env.number("VOICE_SESSION_TIME_LIMIT_SECONDS", base.voice_time_limit, minimum=1.0),
        voice_media_timeout=env.number("VOICE_MEDIA_TIMEOUT_SECONDS", base.voice_media_timeout, minimum=1.0),
        login=(user, password) if user and password else None,
        host=env.text("GRADIO_SERVER_NAME", "0.0.0.0" if on_space else base.host),
        port=int(env.number("GRADIO_SERVER_PORT", base.port, minimum=1, maximum=65535)),
        on_space=on_space,
        offline=_offline_settings(env),
        redis_url=env.text("REDIS_URL"),
        redis_ttl=env.number("REDIS_TTL_SECONDS", base.redis_ttl, minimum=60.0),
        relay=RelaySettings(
            hf_token=env.text("HF_TOKEN"),
            cloudflare_key_id=env.text("CLOUDFLARE_TURN_KEY_ID"),
            cloudflare_key_token=env.text("CLOUDFLARE_TURN_KEY_API_TOKEN"),
            twilio_account_sid=env.text("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=env.text("TWILIO_AUTH_TOKEN"),
        ),
    )


def _knowledge_dir(env: _Environment) -> Path:
    raw = env.text("KNOWLEDGE_DIR")
    if not raw:
        return DEFAULT_KNOWLEDGE_DIR
    folder = Path(raw).expanduser()
    if not folder.is_dir():
        log.warning("KNOWLEDGE_DIR のフォルダ「%s」が見つからないため、同梱のサンプル記事を検索します"
                    " (KNOWLEDGE_DIR=%r is not a folder; using the shipped articles)", raw, raw)
        return DEFAULT_KNOWLEDGE_DIR
    return folder


def _offline_settings(env: _Environment) -> OfflineSettings:
    base = OfflineSettings()
    offline = OfflineSettings(
        asr_model=env.text("OFFLINE_ASR_MODEL", base.asr_model),
        asr_language=env.text("OFFLINE_ASR_LANGUAGE", base.asr_language),
        llm_base_url=env.text("OFFLINE_LLM_BASE_URL"),
        llm_model=env.text("OFFLINE_LLM_MODEL"),
        llm_api_key=env.text("OFFLINE_LLM_API_KEY", base.llm_api_key),
    )
    if bool(offline.llm_base_url) != bool(offline.llm_model):
        log.warning("ローカル言語モデルを使うには OFFLINE_LLM_BASE_URL と OFFLINE_LLM_MODEL の両方が必要です。"
                    "ルールベースの応答で動きます。")
    return offline


def missing_settings(settings: RealtimeSettings) -> list[str]:
    """Names of variables the chosen provider still needs (empty when ready)."""
    if settings.provider == "azure":
        pairs = [
            ("AZURE_OPENAI_ENDPOINT", settings.endpoint),
            ("AZURE_OPENAI_API_KEY", settings.api_key),
            ("AZURE_OPENAI_DEPLOYMENT", settings.model),
        ]
        return [name for name, value in pairs if not value]
    if settings.provider == "openai":
        return [] if settings.api_key else ["OPENAI_API_KEY"]
    if settings.provider == "none":
        return ["AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_DEPLOYMENT"]
    return []
