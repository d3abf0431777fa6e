"""MCP_CONFIG as users write it: both server shapes, ${VAR} from the environment, bad files and entries."""

from __future__ import annotations

import json
import logging

from mcp_config import load_config
from mcp_tools import function_name


def write(tmp_path, data) -> str:
    path = tmp_path / "mcp.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def test_stdio_and_http_servers_with_variables_from_the_environment(tmp_path, caplog):
    path = write(tmp_path, {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "server", "${HOME_DIR}"], "env": {"TOKEN": "${FILES_TOKEN}"}},
        "tickets": {"url": "https://user:pw@tickets.example/mcp?key=${KEY}", "headers": {"Authorization":
                                                                                       "Bearer ${KEY}"}},
        "broken": {"args": []},
        "odd": "not an object",
    }})
    environ = {"HOME_DIR": "/srv", "FILES_TOKEN": "t-1", "KEY": "secret-key"}
    caplog.set_level(logging.INFO)
    files, tickets = load_config(path, environ)
    assert (files.command, files.args, dict(files.env)) == ("npx", ("-y", "server", "/srv"), {"TOKEN": "t-1"})
    assert tickets.headers == {"Authorization": "Bearer secret-key"}
    assert tickets.where == "https://tickets.example/mcp"  # no credentials, no query
    assert "secret-key" not in repr(tickets) and "t-1" not in repr(files)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2  # broken, odd
    assert "secret-key" not in caplog.text


def test_a_bad_file_is_one_line_and_no_servers(tmp_path, caplog):
    assert load_config(str(tmp_path / "missing.json")) == []
    assert load_config(write(tmp_path, "{not json")) == []
    assert load_config(write(tmp_path, {"servers": {}})) == []
    assert len(caplog.records) == 3 and not [r for r in caplog.records if r.exc_info]


def test_function_names_are_valid():
    assert function_name("get_current_time") == "get_current_time"
    assert function_name("my.server/tool name") == "my_server_tool_name"
    assert len(function_name("x" * 100)) == 64
