"""Settings read from `.env` and the environment: which realtime service to use and how to talk."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Literal

from dotenv import load_dotenv

Provider = Literal["azure", "openai", "offline", "none"]
Dialect = Literal["ga", "preview"]

DEFAULT_INSTRUCTIONS = (
    "あなたは親切で簡潔な日本語の音声アシスタントです。ユーザーとは日本語で会話してください"
    "（ユーザーが英語で話しかけた場合は英語で答えてください）。"
    "天気の質問には get_weather ツールを使い、正確な情報を伝えてください。"
    "調べものやデータベース検索の依頼には search_database ツールを使ってください。"
    "search_database は時間のかかる処理です。開始したら「検索を開始しました。他に何かお手伝いできることは"
    "ありますか？」のように伝え、結果を待たずに会話を続けてください。結果が届いたら要点を短く伝えてください。"
    "音声で聞きやすいよう、一度の返答は二、三文にまとめてください。"
)


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

    @property
    def label(self) -> str:
        """A short, secret-free description for the status line."""
        if self.provider == "azure":  # no host: the page is public on a Space
            version = "GA" if self.dialect == "ga" else f"preview {self.api_version}"
            return f"Azure OpenAI ({self.model}, {version})"
        if self.provider == "openai":
            return f"OpenAI ({self.model})"
        if self.provider == "offline":
            return "オフラインモード（内蔵のルールベース・アシスタント）"
        return "未設定"

    def with_base_url(self, base_url: str) -> RealtimeSettings:
        return replace(self, base_url=base_url)


MISSING_CREDENTIALS_MESSAGE = (
    "Realtime API の認証情報が設定されていません。`.env` に AZURE_OPENAI_ENDPOINT / AZURE_OPENAI_API_KEY / "
    "AZURE_OPENAI_DEPLOYMENT（または OPENAI_API_KEY）を設定してください。"
)


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _float(name: str, default: float) -> float:
    try:
        return float(_env(name, str(default)))
    except ValueError:
        return default


def load_voice_settings() -> VoiceSettings:
    base = VoiceSettings()
    return VoiceSettings(
        instructions=_env("REALTIME_INSTRUCTIONS", base.instructions),
        voice=_env("REALTIME_VOICE", base.voice),
        transcription_model=_env("TRANSCRIPTION_MODEL", base.transcription_model),
        transcription_language=_env("TRANSCRIPTION_LANGUAGE", base.transcription_language),
        vad_threshold=_float("VAD_THRESHOLD", base.vad_threshold),
        vad_silence_ms=int(_float("VAD_SILENCE_MS", base.vad_silence_ms)),
        vad_prefix_padding_ms=int(_float("VAD_PREFIX_PADDING_MS", base.vad_prefix_padding_ms)),
    )


def load_settings(env_file: str | None = ".env") -> RealtimeSettings:
    """Pick the provider: an explicit REALTIME_PROVIDER, else Azure, else OpenAI, else offline."""
    if env_file:
        load_dotenv(env_file, override=False)
    voice = load_voice_settings()
    explicit = _env("REALTIME_PROVIDER").lower()
    azure_ready = all(_env(n) for n in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_DEPLOYMENT"))
    provider = explicit or ("azure" if azure_ready else "openai" if _env("OPENAI_API_KEY") else "offline")
    if provider == "azure":
        version = _env("AZURE_OPENAI_API_VERSION", "v1")
        return RealtimeSettings(
            provider="azure",
            dialect="ga" if version in ("v1", "ga", "GA") else "preview",
            model=_env("AZURE_OPENAI_DEPLOYMENT"),
            endpoint=_env("AZURE_OPENAI_ENDPOINT"),
            api_version=version,
            api_key=_env("AZURE_OPENAI_API_KEY"),
            voice=voice,
        )
    if provider == "openai":
        return RealtimeSettings(
            provider="openai",
            model=_env("OPENAI_REALTIME_MODEL", "gpt-realtime"),
            api_key=_env("OPENAI_API_KEY"),
            base_url=_env("OPENAI_BASE_URL"),
            voice=voice,
        )
    if provider == "offline":
        return RealtimeSettings(provider="offline", model="offline-assistant", api_key="offline", voice=voice)
    return RealtimeSettings(provider="none", voice=voice)


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


def tool_timeout() -> float:
    """Seconds a tool call may run before it ends as タイムアウト (TOOL_TIMEOUT_SECONDS, default 60)."""
    return max(0.1, _float("TOOL_TIMEOUT_SECONDS", 60.0))
