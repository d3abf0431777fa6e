"""MCP_CONFIG: the JSON file users already have for their MCP servers, read once at start-up.

The common shape: `{"mcpServers": {"name": {"command": ..., "args": [...], "env": {...}}}}` for a stdio
server, `{"name": {"url": "http(s)://…/mcp", "headers": {...}}}` for streamable HTTP. `${VAR}` in any value
comes from the environment. A bad file or entry is one log line and is skipped; header values are secrets
and stay out of every repr and log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ServerConfig:
    """One configured server: a command to run (stdio) or a URL (streamable HTTP)."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # may carry tokens too
    url: str = field(default="", repr=False)  # may carry a key in its query or credentials
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    background: bool = False  # its tools answer "started" at once and tell the result later

    @property
    def where(self) -> str:
        """A secret-free description for the log: the command's name, or the URL without credentials or query."""
        if not self.url:
            return Path(self.command).name
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def expand(value: str, environ: Mapping[str, str]) -> str:
    """`${VAR}` from the environment (an unset one becomes empty, and is logged by name only)."""
    def variable(match: re.Match[str]) -> str:
        if match.group(1) not in environ:
            log.warning("MCP_CONFIG: 環境変数 %s が設定されていません（空として扱います）", match.group(1))
        return environ.get(match.group(1), "")
    return _VARIABLE.sub(variable, value)


def _strings(raw: Any, environ: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {str(key): expand(str(value), environ) for key, value in raw.items()}


def _server(name: str, raw: Any, environ: Mapping[str, str]) -> ServerConfig | None:
    if not isinstance(raw, dict):
        log.warning("MCP_CONFIG: サーバー「%s」の設定がオブジェクトではないため使いません", name)
        return None
    background = raw.get("background") is True
    if isinstance(raw.get("url"), str) and raw["url"].strip():
        return ServerConfig(name, url=expand(raw["url"].strip(), environ),
                            headers=_strings(raw.get("headers"), environ), background=background)
    if isinstance(raw.get("command"), str) and raw["command"].strip():
        args = raw.get("args") if isinstance(raw.get("args"), list) else []
        return ServerConfig(name, command=expand(raw["command"].strip(), environ),
                            args=tuple(expand(str(a), environ) for a in args),
                            env=_strings(raw.get("env"), environ), background=background)
    log.warning("MCP_CONFIG: サーバー「%s」に command も url もないため使いません", name)
    return None


def load_config(path: str, environ: Mapping[str, str] | None = None) -> list[ServerConfig]:
    """The servers in the file at `path`; an unreadable or malformed file is one log line and no servers."""
    environ = os.environ if environ is None else environ
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        log.error("MCP_CONFIG のファイル %s を読めません（%s）。MCP サーバーなしで起動します", path,
                  exc.strerror or type(exc).__name__)
        return []
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        log.error("MCP_CONFIG のファイル %s は正しい JSON ではありません（%s）。MCP サーバーなしで起動します",
                  path, exc)
        return []
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        log.error("MCP_CONFIG のファイル %s に mcpServers がありません。MCP サーバーなしで起動します", path)
        return []
    return [server for name, raw in servers.items() if (server := _server(str(name), raw, environ))]
