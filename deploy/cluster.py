"""Run the app as a cluster on this machine: Redis, N replicas of app.py and HAProxy in front of them.

    python deploy/cluster.py --replicas 2 --port 8000

Redis (`redis-server` from PATH, on a free loopback port) is started unless REDIS_URL is set; every replica
gets REDIS_URL and the rest of this environment. Stays in the foreground; Ctrl-C or SIGTERM stops everything
it started. SIGHUP restarts the replicas one by one (maintenance in HAProxy, stop, start, ready): the
conversations go on, taken over from Redis by the other replicas.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from balancer import BACKEND, admin, haproxy_config, server_stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))
from settings import DEFAULT_SEARCH_DB  # noqa: E402

LOOPBACK = "127.0.0.1"
READY_SECONDS = 180.0  # a replica's start (Gradio, the knowledge base) on a busy two-core machine
STOP_SECONDS = 10.0
DRAIN_SECONDS = 10.0  # what a replica being restarted gets to finish the requests it is serving


def replica_index(name: str) -> Path:
    """Each replica's own knowledge-base index (one writer per index: replicas sharing one would rebuild and
    lock it under each other), beside the configured one and kept across restarts."""
    base = Path(os.environ.get("SEARCH_DB_PATH") or DEFAULT_SEARCH_DB)
    return base.with_name(f"{base.stem}-{name}{base.suffix}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: a child gets SIGTERM if this process is killed outright, so nothing is left behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_SECONDS)


def wait_for(check, what: str, proc: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} が起動できませんでした（終了コード {proc.returncode}）")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} が {timeout:.0f} 秒以内に起動しませんでした")
        time.sleep(0.2)


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code == 401  # a replica with a login answers, too
    except OSError:
        return False


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        sys.exit(f"{program} が見つかりません（Debian: apt-get install -y haproxy redis-server）")
    return path


class Cluster:
    def __init__(self, replicas: int, port: int, host: str, workdir: Path) -> None:
        self.port, self.host, self.workdir = port, host, workdir
        self.names = [f"app{i + 1}" for i in range(replicas)]
        self.ports = {name: free_port() for name in self.names}
        self.admin_socket = str(workdir / "haproxy.sock")
        self.redis: subprocess.Popen | None = None
        self.apps: dict[str, subprocess.Popen] = {}
        self.haproxy: subprocess.Popen | None = None
        self.redis_url = os.environ.get("REDIS_URL", "")

    def start_redis(self) -> None:
        if self.redis_url:
            return
        port = free_port()
        self.redis = start([need("redis-server"), "--port", str(port), "--bind", LOOPBACK, "--save", "",
                            "--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"])
        wait_for(lambda: redis_answers(port), "redis-server", self.redis, 30)
        self.redis_url = f"redis://{LOOPBACK}:{port}/0"

    def start_app(self, name: str) -> subprocess.Popen:
        env = {**os.environ, "REDIS_URL": self.redis_url, "PYTHONUNBUFFERED": "1",
               "SEARCH_DB_PATH": str(replica_index(name))}
        env.pop("GRADIO_SERVER_NAME", None)
        env.pop("GRADIO_SERVER_PORT", None)
        proc = start([sys.executable, str(ROOT / "app.py"), "--host", LOOPBACK, "--port", str(self.ports[name])],
                     env)
        self.apps[name] = proc
        return proc

    def wait_app(self, name: str) -> None:
        url = f"http://{LOOPBACK}:{self.ports[name]}/config"
        wait_for(lambda: http_answers(url), f"レプリカ {name}", self.apps[name], READY_SECONDS)

    def start_haproxy(self) -> None:
        config = self.workdir / "haproxy.cfg"
        config.write_text(haproxy_config(self.host, self.port, list(self.ports.items()), self.admin_socket))
        self.haproxy = start([need("haproxy"), "-db", "-f", str(config)])
        wait_for(lambda: os.path.exists(self.admin_socket) and http_answers(f"http://{self.host}:{self.port}/config"),
                 "haproxy", self.haproxy, 30)

    def restart_replicas(self) -> None:
        """One at a time: the replica gets no new requests (its pages and clients go to the others, which take
        their conversations over from Redis), finishes what it serves, stops, starts, and is back once HAProxy
        sees it healthy."""
        for name in self.names:
            print(f"restarting {name}", flush=True)
            admin(self.admin_socket, f"set server {BACKEND}/{name} state maint")
            deadline = time.monotonic() + DRAIN_SECONDS  # a page's live stream never ends by itself: bounded
            while server_stats(self.admin_socket)[name].get("scur") not in ("0", "") and time.monotonic() < deadline:
                time.sleep(0.2)
            stop(self.apps[name])
            self.start_app(name)
            self.wait_app(name)
            admin(self.admin_socket, f"set server {BACKEND}/{name} state ready")
            wait_for(lambda n=name: server_stats(self.admin_socket)[n].get("status", "").startswith("UP"),
                     f"レプリカ {name}（HAProxy の確認）", self.apps[name], 30)
            print(f"{name} is back (pid {self.apps[name].pid})", flush=True)

    def stop_all(self) -> None:
        for proc in [self.haproxy, *self.apps.values(), self.redis]:
            if proc is not None:
                stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redis + app.py × N + HAProxy（セッション固定）をこのマシンで動かす")
    parser.add_argument("--replicas", type=int, default=2, help="app.py の数（既定 2）")
    parser.add_argument("--port", type=int, default=8000, help="HAProxy が待ち受けるポート（既定 8000）")
    parser.add_argument("--host", default=LOOPBACK, help="HAProxy が待ち受けるアドレス（既定 127.0.0.1）")
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= 32:
        parser.error("--replicas は 1〜32 にしてください")

    stopping = threading.Event()
    restart = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGHUP, lambda *_: restart.set())

    with tempfile.TemporaryDirectory(prefix="voice-cluster-") as workdir:
        cluster = Cluster(args.replicas, args.port, args.host, Path(workdir))
        try:
            cluster.start_redis()
            for name in cluster.names:
                cluster.start_app(name)
            for name in cluster.names:
                cluster.wait_app(name)
            cluster.start_haproxy()
            print(f"serving at http://{args.host}:{args.port}/", flush=True)
            for name in cluster.names:
                print(f"replica {name}: http://{LOOPBACK}:{cluster.ports[name]}/ pid {cluster.apps[name].pid}",
                      flush=True)
            redis = "REDIS_URL (not started here)" if cluster.redis is None else (
                f"{cluster.redis_url} pid {cluster.redis.pid}")
            print(f"redis: {redis}", flush=True)
            print(f"haproxy: pid {cluster.haproxy.pid} admin socket {cluster.admin_socket}", flush=True)
            watched: set[str] = set()
            while not stopping.wait(0.5):
                if restart.is_set():
                    restart.clear()
                    cluster.restart_replicas()
                    watched.clear()
                for name, proc in cluster.apps.items():
                    if proc.poll() is not None and name not in watched:
                        watched.add(name)  # HAProxy sends its sessions to the others; SIGHUP starts it again
                        print(f"replica {name} exited (code {proc.returncode})", flush=True)
                for proc in (cluster.haproxy, cluster.redis):
                    if proc is not None and proc.poll() is not None:
                        print(f"{proc.args[0]} exited (code {proc.returncode}): stopping", flush=True)
                        return 1
            return 0
        except RuntimeError as exc:
            print(f"エラー: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            cluster.stop_all()
            print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
