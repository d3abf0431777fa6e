"""Ask the running assistant one question through its API and show the reply as it streams.

Usage:
    python examples/api_client.py "東京の天気は？"
    python examples/api_client.py http://127.0.0.1:7860/ --auth user:pass "AIについて調べて"

The reply is printed as it grows, then the tool calls of this conversation (`/tool_status`) as a table.
Needs only `gradio_client` (installed with gradio).
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from collections.abc import Sequence

import httpx
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError

DEFAULT_URL = "http://127.0.0.1:7860/"
COLUMNS = ["開始時刻", "ツール", "引数", "状態", "経過秒", "結果"]
MAX_CELL_WIDTH = 40
REPLY_TIMEOUT_SECONDS = 180.0


class ClientError(Exception):
    """A problem to show the user as one line, without a traceback."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="リアルタイム音声アシスタントに API でテキストの質問をします。",
        usage="python examples/api_client.py [URL] [--auth USER:PASS] 質問",
    )
    parser.add_argument("words", nargs="+", metavar="[URL] 質問",
                        help=f"アプリの URL（既定: {DEFAULT_URL}）と質問")
    parser.add_argument("--auth", metavar="USER:PASS",
                        help="ログインが設定されているときのユーザー名とパスワード")
    args = parser.parse_intermixed_args(argv)
    if len(args.words) > 2:
        parser.error("質問は引用符で囲んで 1 つの引数にしてください（例: \"東京の天気は？\"）。")
    args.url, args.question = (args.words if len(args.words) == 2 else [DEFAULT_URL, args.words[0]])
    if args.auth is not None and ":" not in args.auth:
        parser.error("--auth は USER:PASS の形で指定してください。")
    return args


def connect(url: str, auth: str | None) -> Client:
    credentials = tuple(auth.split(":", 1)) if auth else None
    try:
        return Client(url, auth=credentials, verbose=False)
    except AuthenticationError:
        raise ClientError("このアプリにはログインが必要です。--auth USER:PASS を指定してください。") from None
    except httpx.ConnectError:
        raise ClientError(
            f"{url} に接続できません。アプリが起動しているか（python app.py）、URL を確認してください。"
        ) from None
    except httpx.TimeoutException:
        raise ClientError(f"{url} が応答しません（タイムアウト）。") from None
    except ValueError as exc:
        if "login" in str(exc).lower():
            raise ClientError("ログインできませんでした。ユーザー名かパスワードが違います。") from None
        raise ClientError(f"{url} を API として読み込めませんでした: {exc}") from None
    except httpx.HTTPError as exc:
        raise ClientError(f"{url} との通信に失敗しました: {exc}") from None


def stream_reply(client: Client, question: str) -> str:
    """Print the reply as it grows (only the new part each time); return the final text."""
    job = client.submit(question, api_name="/chat")
    shown = ""
    try:
        for partial in job:
            shown = print_growth(shown, str(partial))
        final = job.result(timeout=REPLY_TIMEOUT_SECONDS)
    except AppError as exc:
        raise ClientError(f"アプリがエラーを返しました: {exc}") from None
    except TimeoutError:
        raise ClientError(f"{REPLY_TIMEOUT_SECONDS:g} 秒以内に応答が終わりませんでした。") from None
    shown = print_growth(shown, str(final))
    print(flush=True)
    return shown


def print_growth(shown: str, text: str) -> str:
    if text.startswith(shown):
        print(text[len(shown):], end="", flush=True)
    else:  # the reply was rewritten: start a fresh line
        print("\n" + text, end="", flush=True)
    return text


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def clip(text: str, limit: int = MAX_CELL_WIDTH) -> str:
    text = " ".join(str(text).split())
    if width(text) <= limit:
        return text
    out = ""
    for ch in text:
        if width(out + ch) > limit - 1:
            break
        out += ch
    return out + "…"


def pad(text: str, size: int) -> str:
    return text + " " * (size - width(text))


def format_table(rows: list[list[str]]) -> str:
    cells = [COLUMNS] + [[clip(c) for c in row] for row in rows]
    sizes = [max(width(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = [" | ".join(pad(c, s) for c, s in zip(row, sizes, strict=True)).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * s for s in sizes))
    return "\n".join(lines)


def show_tools(client: Client) -> None:
    try:
        rows = client.predict(api_name="/tool_status")
    except AppError as exc:
        raise ClientError(f"ツールの状況を取得できませんでした: {exc}") from None
    print()
    if not rows:
        print("ツールの呼び出しはありませんでした。")
        return
    print("ツールの呼び出し:")
    print(format_table([[str(c) for c in row][: len(COLUMNS)] for row in rows]))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        client = connect(args.url, args.auth)
        stream_reply(client, args.question)
        show_tools(client)
    except ClientError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except (httpx.HTTPError, ConnectionError) as exc:
        print(f"エラー: 通信に失敗しました（{type(exc).__name__}: {exc}）", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
