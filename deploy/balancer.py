"""HAProxy in front of the app's replicas: its configuration, and its admin socket (state, statistics, tables).

Affinity: every request of one page or `gradio_client` must reach one replica (the WebRTC peer, the Gradio
queue and the conversation live there). Gradio 5.50 names the session in three places, and HAProxy sticks on
whichever the request has:
- the query of `GET /gradio_api/queue/data?session_hash=…`,
- the path of `GET /gradio_api/heartbeat/<session_hash>`,
- the JSON body of `POST /gradio_api/queue/join` and `POST /gradio_api/component_server` (the WebRTC offer),
  which HAProxy reads with `option http-buffer-request` and `json_query` (HAProxy ≥ 2.4).
Browsers also get a cookie, used only by requests without a session hash (the page itself): the table wins,
so the sessions moved off a restarted replica do not bounce back to it (a request split across two replicas)."""

from __future__ import annotations

import socket

BACKEND = "replicas"
COOKIE = "VA_REPLICA"


def haproxy_config(host: str, port: int, replicas: list[tuple[str, int]], admin_socket: str = "") -> str:
    """The configuration deploy/cluster.py runs (deploy/haproxy.cfg is the same, annotated, for real machines)."""
    admin = f"    stats socket {admin_socket} mode 600 level admin\n" if admin_socket else ""
    servers = "".join(f"    server {name} 127.0.0.1:{replica_port} cookie {name}\n"
                      for name, replica_port in replicas)
    return f"""global
    maxconn 4096
{admin}
defaults
    mode http
    option redispatch
    retries 3
    retry-on conn-failure empty-response junk-response
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout http-request 30s
    timeout http-keep-alive 10s
    timeout check 5s

frontend voice_assistant
    bind {host}:{port}
    option http-buffer-request
    acl session_known var(txn.session) -m found
    http-request set-var(txn.session) url_param(session_hash)
    http-request set-var(txn.session) path,field(4,/) if !session_known {{ path_beg /gradio_api/heartbeat/ }}
    http-request set-var(txn.session) req.body,json_query('$.session_hash') if !session_known
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    stick-table type string len 64 size 100k expire 2h
    stick on var(txn.session)
    cookie {COOKIE} insert indirect nocache httponly
    ignore-persist if {{ var(txn.session) -m found }}
    option httpchk GET /config
    http-check expect rstatus ^(2|3|401)
    default-server check inter 2s fall 3 rise 2
{servers}"""


def admin(socket_path: str, command: str, timeout: float = 5.0) -> str:
    """One command on HAProxy's admin socket (`show table replicas`, `set server replicas/app1 state drain` …)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def sticky_sessions(socket_path: str) -> dict[str, str]:
    """Session hash → server name, as HAProxy's stick table holds it now."""
    sessions = {}
    for line in admin(socket_path, f"show table {BACKEND}").splitlines():
        fields = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
        if "key" in fields and "server_key" in fields:
            sessions[fields["key"]] = fields["server_key"]
    return sessions


def server_stats(socket_path: str) -> dict[str, dict[str, str]]:
    """Server name → HAProxy's statistics row (`status`: UP/DOWN/MAINT…, `scur`: requests it is serving)."""
    lines = admin(socket_path, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",") if lines else []
    rows = (dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line)
    return {row["svname"]: row for row in rows if row.get("pxname") == BACKEND and row.get("svname") not in
            ("FRONTEND", "BACKEND")}
