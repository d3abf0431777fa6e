"""A folder of the user's own documents: Japanese variants meet, changes show up while running, bad files are skipped.

Real SQLite files and the real Sudachi dictionary; the folder and the index live in tmp_path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from services.documents import MAX_BYTES
from services.knowledge import KnowledgeBase, SearchResult
from settings import load_settings
from tools import ToolContext, search_database

DOCUMENTS = {
    "delivery.md": "# 納期について\n\n通常の納期はご注文から5営業日です。お急ぎの場合はご相談ください。\n",
    "apply.txt": "会員登録の手順\n\nウェブのフォームから申し込みができます。申し込み後に確認メールが届きます。\n",
    "parts.md": "# 製品の同梱物\n\n箱には本体と付属品（電源ケーブル、説明書）が入っています。\n",
    "lunch.md": "# 社員食堂\n\n金曜日の日替わりはカツ丼です。ＡＩ研究会は毎週水曜日に集まります。\n",
    "guide.html": "<html><head><title>窓の題</title><style>p{color:red}</style></head><body><h1>在庫の確認方法</h1>"
                  "<p>倉庫の在庫は毎朝9時に更新されます。</p><script>var hidden = '在庫';</script></body></html>",
    "running.txt": "朝のジョギング\n\n毎朝公園を走ります。雨の日はジムで走りました。\n",
}


def write(folder: Path, name: str, text: str | bytes, mtime: int | None = None) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    for name, text in DOCUMENTS.items():
        write(docs, name, text)
    return docs


@pytest.fixture
def kb(folder: Path, tmp_path: Path) -> KnowledgeBase:
    return KnowledgeBase(tmp_path / "index" / "kb.sqlite3", folder)


def sources(result: SearchResult) -> list[str]:
    return [h.source for h in result.hits]


@pytest.mark.parametrize(
    ("query", "source", "marked"),
    [
        ("納期", "delivery.md", "「納期」"),  # a 2-character word
        ("申込", "apply.txt", "「申し込み」"),  # the document writes it 申し込み
        ("申込み", "apply.txt", "「申し込み」"),
        ("附属品", "parts.md", "「付属品」"),  # the document writes it 付属品
        ("かつ丼", "lunch.md", "「カツ丼」"),
        ("AI", "lunch.md", "「ＡＩ」"),  # the document writes it full width
        ("走った", "running.txt", "「走」"),  # inflection: the document says 走ります / 走りました
        ("在庫", "guide.html", "「在庫」"),
    ],
)
def test_variants_and_inflections_find_the_document_that_says_it_otherwise(
        kb: KnowledgeBase, query: str, source: str, marked: str) -> None:
    result = kb.search(query)
    assert sources(result)[:1] == [source], result
    assert marked in result.hits[0].snippet


def test_titles_come_from_the_first_heading_or_the_file_name(kb: KnowledgeBase) -> None:
    assert kb.search("納期").hits[0].title == "納期について"
    assert kb.search("申し込み").hits[0].title == "apply"  # plain text: the file name
    html = kb.search("倉庫").hits[0]
    assert html.title == "在庫の確認方法" and "p{color" not in html.snippet
    assert kb.search("hidden").total == 0  # script text is not a document's words
    assert kb.search("窓の題").total == 0  # the <title> is not body text (the <h1> was the title)


def test_english_terms_and_mixed_queries(folder: Path, kb: KnowledgeBase) -> None:
    write(folder, "ml.md", "# Transformer の基礎\n\nTransformerは自己注意を使うモデルで、GPUで並列に学習できます。\n")
    assert sources(kb.search("transformer")) == ["ml.md"]
    assert sources(kb.search("ＧＰＵ 学習")) == ["ml.md"]
    # Words that are not all in one document: the best partial matches rather than nothing.
    assert sources(kb.search("納期 存在しない言葉")) == ["delivery.md"]


def test_changed_and_deleted_files_update_the_index(folder: Path, kb: KnowledgeBase) -> None:
    assert sources(kb.search("納期")) == ["delivery.md"]
    write(folder, "delivery.md", "# 配送\n\n配送料は全国一律です。\n", mtime=int(time.time()) + 5)
    assert kb.sync().changed == 1
    assert kb.search("納期").total == 0
    assert sources(kb.search("配送料")) == ["delivery.md"]
    (folder / "delivery.md").unlink()
    assert kb.sync().deleted == 1
    assert kb.search("配送料").total == 0
    assert sources(kb.search("申込")) == ["apply.txt"]  # the others are untouched


def test_a_restart_reads_only_what_changed(folder: Path, kb: KnowledgeBase, tmp_path: Path) -> None:
    assert kb.sync().added == len(DOCUMENTS)
    # Same size and time, other words: a restart that re-read this file would find 遅延 and lose 納期.
    stat = (folder / "delivery.md").stat()
    text = DOCUMENTS["delivery.md"].replace("納期", "遅延")
    write(folder, "delivery.md", text)
    os.utime(folder / "delivery.md", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    write(folder, "new.md", "# 新しい文書\n\n棚卸しの予定です。\n")

    restarted = KnowledgeBase(kb.db_path, folder)
    changes = restarted.sync()
    assert (changes.added, changes.changed, changes.deleted) == (1, 0, 0)
    assert sources(restarted.search("納期")) == ["delivery.md"]
    assert restarted.search("遅延").total == 0
    assert sources(restarted.search("棚卸し")) == ["new.md"]


def test_bad_files_are_skipped_with_one_log_line_each(folder: Path, kb: KnowledgeBase,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="services.knowledge")
    write(folder, "binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    write(folder, "latin.txt", "caf\xe9 \xff\xfe".encode("latin-1"))  # neither UTF-8 nor Shift_JIS
    write(folder, "sjis.txt", "納品書の書き方\n\n納品書には品番を書きます。".encode("cp932"))  # Shift_JIS is read
    with open(folder / "huge.md", "wb") as huge:
        huge.truncate(MAX_BYTES + 1)
    changes = kb.sync()
    assert (changes.added, changes.skipped) == (len(DOCUMENTS) + 4, 3)
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(skipped) == 3 and all(r.exc_info is None for r in caplog.records), skipped
    assert {m.split()[1] for m in skipped} == {"binary.txt", "latin.txt", "huge.md"}, skipped
    assert sources(kb.search("品番")) == ["sjis.txt"]
    assert sources(kb.search("納期")) == ["delivery.md"]
    caplog.clear()
    kb.sync()  # an unchanged bad file is not read, nor logged, again
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


async def test_a_file_written_while_the_app_runs_is_found_by_the_tool(folder: Path, tmp_path: Path) -> None:
    settings = load_settings({"KNOWLEDGE_DIR": str(folder), "SEARCH_DB_PATH": str(tmp_path / "app.sqlite3"),
                              "SEARCH_LATENCY_SECONDS": "0"})
    context = ToolContext.from_settings(settings)  # the app's own wiring: this knowledge base watches the folder
    try:
        first = await search_database(context, query="納期")
        assert [h["source"] for h in first["hits"]] == ["delivery.md"]
        write(folder, "sub/holiday.md", "# 年末年始の休業\n\n12月29日から1月3日まで休業します。\n")

        async def found() -> list[str]:
            result = await search_database(context, query="休業")
            return [h["source"] for h in result["hits"]]

        start = time.monotonic()
        while (hits := await found()) != ["sub/holiday.md"]:
            assert time.monotonic() - start < 10, f"not found within 10 s: {hits}"
            await asyncio.sleep(0.1)
        (folder / "delivery.md").unlink()
        while (await search_database(context, query="納期"))["total"]:
            assert time.monotonic() - start < 20, "the deleted file is still found"
            await asyncio.sleep(0.1)
    finally:
        context.knowledge.stop_watching()


def test_the_folder_setting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert load_settings({"KNOWLEDGE_DIR": str(tmp_path)}).knowledge_dir == tmp_path
    default = load_settings({}).knowledge_dir
    assert default.name == "knowledge" and any(default.glob("*.md"))
    assert load_settings({"KNOWLEDGE_DIR": str(tmp_path / "missing")}).knowledge_dir == default
    assert "KNOWLEDGE_DIR" in caplog.text


def test_a_large_folder_logs_its_progress(folder: Path, kb: KnowledgeBase, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="services.knowledge")
    for i in range(200):
        write(folder, f"bulk/{i:03}.txt", f"連絡事項{i}\n\n第{i}回の定例会の議事録です。")
    assert kb.sync().added == len(DOCUMENTS) + 200
    lines = [r.getMessage() for r in caplog.records]
    assert any("索引を作っています" in line and f"{len(DOCUMENTS) + 200} 件" in line for line in lines), lines
    assert any("追加 206" in line for line in lines), lines
    assert kb.search("定例会", limit=20).total == 200


def test_a_folder_that_goes_away_keeps_the_index(folder: Path, kb: KnowledgeBase, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    kb.sync()
    folder.rename(tmp_path / "unplugged")
    assert kb.sync() == kb.sync()  # nothing deleted, and the warning is not repeated
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"ナレッジベースのフォルダが見つかりません: {folder}"]
    assert sources(kb.search("納期")) == ["delivery.md"]
