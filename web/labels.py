"""Every Japanese word the page shows for a domain value, and for the English that fastrtc and Gradio put there.

Domain values (call status, connection state) are string enums inside; they become labels only here.
The maps are keyed by the enums' string values, so a `StrEnum` member and its plain value both look up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conversation.notices import Notice

CALL_STATUS_LABELS: dict[str, str] = {
    "running": "実行中",
    "done": "完了",
    "failed": "失敗",
    "timeout": "タイムアウト",
    "cancelled": "キャンセル",
}

CONNECTION_LABELS: dict[str, str] = {
    "not_connected": "接続していません",
    "connecting": "接続中…",
    "connected": "接続済み",
    "reconnecting": "再接続中…",
    "not_configured": "未設定",
    "failed": "接続エラー",
    "closed": "終了しました",
}

# Toast titles for our own gr.Warning / gr.Error (Gradio's defaults are "Warning" / "Error").
WARNING_TITLE = "注意"
ERROR_TITLE = "エラー"

# English that fastrtc's voice widget and Gradio's own widgets draw (text, title, aria-label, alt, placeholder),
# replaced in the browser by web/japanese.js. tests/test_browser.py fails when an English string it missed appears.
PAGE_TEXT: dict[str, str] = {
    # fastrtc: the voice widget
    "Click to Access Microphone": "クリックしてマイクを許可",
    "grant webcam access": "マイクの使用を許可",
    "start stream": "録音の開始と停止",
    "stop stream": "録音の停止",
    "start recording": "録音開始",
    "stop recording": "録音停止",
    "Stop Recording": "録音停止",
    "mute audio": "音声をミュート",
    "unmute audio": "音声のミュートを解除",
    "mute mic": "マイクをミュート",
    "unmute mic": "マイクのミュートを解除",
    "select input source": "入力デバイスを選択",
    "select source": "入力デバイスを選択",
    "High volume": "音量",
    "Muted volume": "ミュート中",
    "Audio visualization icon": "音声の波形",
    "Connecting...": "接続中…",
    "Loading...": "読み込み中…",
    "spinner": "読み込み中",
    "Copy": "コピー",
    "Copied": "コピーしました",
    "Empty value": "値なし",
    "Connection failed!": "接続に失敗しました。",
    "Unexpected server error": "サーバーで予期しないエラーが発生しました。",
    "Too many concurrent connections. Please try again later!":
        "音声会話の同時接続数が上限に達しています。しばらくしてから再度お試しください。",
    "Too many concurrent users. Come back later!":
        "音声会話の同時接続数が上限に達しています。しばらくしてから再度お試しください。",
    # Gradio: toasts (fastrtc's warnings and errors arrive with Gradio's default titles)
    "Warning": WARNING_TITLE,
    "Error": ERROR_TITLE,
    "Info": "お知らせ",
    "Close": "閉じる",
    # Gradio: chat and table
    "chatbot conversation": "会話",
    "Table actions": "表の操作",
    "Open cell menu": "セルのメニュー",
    "File upload": "ファイルのアップロード",
    "Copy message": "メッセージをコピー",
    "Clear": "会話をクリア",
    # Gradio's footer in a browser whose language is not Japanese
    "Use via API": "APIを介して使用",
    "Built with Gradio": "Gradioで作成",
    "Settings": "設定",
    "Logo": "ロゴ",
    "logo": "ロゴ",
    "Drop CSV or TSV files here to import data into dataframe":
        "CSVまたはTSVファイルをここにドロップして、データをデータフレームにインポートします",
}

# Attribute values that start with English and end with the message (Gradio's chat bubbles' aria-labels).
PAGE_PREFIXES: dict[str, str] = {
    "bot's message: ": "アシスタントのメッセージ: ",
    "user's message: ": "あなたのメッセージ: ",
}

# Several replicas (REDIS_URL): shown while Redis cannot be reached
SHARED_STORE_DOWN = ("共有ストア（Redis）に接続できません。会話はこのサーバーのメモリで続きます"
                     "（復旧すると自動で同期します）。")


def call_status_label(status: str) -> str:
    return CALL_STATUS_LABELS.get(status, status)


# What the tool table's 結果 says of a call cancelled that nobody asked to stop (tool_runner.CancelReason)
CANCEL_REASON_LABELS: dict[str, str] = {
    "response_interrupted": "応答が中断されたため実行しませんでした",
    "session_ended": "セッション終了のため中止しました",
}


def call_summary_label(summary: str, cancel_reason: str | None) -> str:
    """A call's result in a word: the tool's own summary, else why it was cancelled."""
    return summary or CANCEL_REASON_LABELS.get(cancel_reason or "", "")


def connection_label(state: str) -> str:
    return CONNECTION_LABELS.get(state, state)


def page_script(css: str) -> str:
    """The JS for `demo.load(js=…)`: adds `css` and puts the Japanese above in place as the page renders.

    (Gradio 5.50 deprecates `gr.Blocks(css=…, head=…)` in favour of `launch()` arguments, which belong to app.py.)
    """
    return (Path(__file__).with_name("japanese.js").read_text(encoding="utf-8")
            .replace("__PAGE_TEXT__", json.dumps(PAGE_TEXT, ensure_ascii=False))
            .replace("__PAGE_PREFIXES__", json.dumps(PAGE_PREFIXES, ensure_ascii=False))
            .replace("__PAGE_CSS__", json.dumps(css)))


# Tool progress, cancelling and MCP servers (issue 18).
def progress_label(done: float, total: float | None) -> str:
    """「3/6」 when the tool counts in steps, 「50%」 when it reports a fraction or percentage, else 「3」."""
    if total and total > 0:
        if float(done).is_integer() and float(total).is_integer() and total > 1:
            return f"{int(done)}/{int(total)}"
        return f"{done / total:.0%}"
    return f"{done:g}"


def cancelled_label(names: list[str], asked: str) -> str:
    """The answer of /cancel_tool and of the page's キャンセル button."""
    if names:
        return f"{len(names)}件のツールをキャンセルしました（{'、'.join(names)}）。"
    return f"実行中の「{asked}」はありません。" if asked else "実行中のツールはありません。"


def servers_label(unavailable: dict[str, str]) -> str:
    """The page's line about MCP servers that cannot be used (empty when all work)."""
    return "".join(f"⚠️ MCP サーバー「{name}」は使えません（{why}）。\n\n" for name, why in unavailable.items())


INFO_TITLE = "お知らせ"
CANCEL_BUTTON = "選択したツールをキャンセル"
CANCEL_HINT = "実行中の行を選んでから「選択したツールをキャンセル」を押すと止められます（選ばなければ実行中のすべて）。"


# Notices (conversation/notices.py): the status line's words besides the connection state.
NOTICE_TEXTS: dict[str, str] = {
    "not_configured": "Realtime API の設定が足りません: {names} を .env に設定してください。",
    "reconnecting": "接続が切れたため再接続しています（会話の内容は引き継がれます）。",
    "reconnected": "再接続しました。会話の内容を引き継いでいます。",
    "no_answer": "サービスが応答しませんでした。もう一度お試しください。",
    "not_heard": "音声を文字にできませんでした: {detail}",
    "service_error": "サービスからのエラー: {detail}",
    "shared_store_down": SHARED_STORE_DOWN,
}
# Why connecting failed (realtime.connection.ConnectFailure); `detail` is the HTTP status or the exception's type.
CONNECT_FAILURE_TEXTS: dict[str, str] = {
    "auth": "認証に失敗しました（HTTP {detail}）。API キーを確認してください。",
    "not_found": "エンドポイントまたはデプロイメントが見つかりません（HTTP {detail}）。"
                 "AZURE_OPENAI_ENDPOINT と AZURE_OPENAI_DEPLOYMENT を確認してください。",
    "rate_limited": "利用上限に達しました（HTTP {detail}）。しばらく待ってから再接続します。",
    "refused": "Realtime サービスが接続を拒否しました（HTTP {detail}）。",
    "timeout": "Realtime サービスへの接続がタイムアウトしました。",
    "network": "Realtime サービスに接続できません。ネットワークとエンドポイントを確認してください。",
    "other": "Realtime サービスに接続できません（{detail}）。",
}


def notice_label(notice: Notice | None) -> str:
    """The notice in Japanese ("" for none); the service's own words and setting names are filled in."""
    if notice is None:
        return ""
    if notice.failure is not None:
        template = CONNECT_FAILURE_TEXTS.get(notice.failure, CONNECT_FAILURE_TEXTS["other"])
    else:
        template = NOTICE_TEXTS.get(notice.kind, "{detail}")
    return template.format(detail=notice.detail, names=", ".join(notice.names))


# The chat (web/chat.py) and the Markdown export (web/export.py)
PENDING_SPEECH = "🎤 …"  # a voice turn whose transcript has not arrived yet
UNHEARD_SPEECH = "（音声を文字にできませんでした）"
INTERRUPTED_SUFFIX = " …（中断）"
