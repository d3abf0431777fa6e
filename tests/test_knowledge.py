"""Knowledge base tests on real SQLite files in tmp_path (never the default runtime DB)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.documents import Article, read_article
from services.knowledge import KnowledgeBase, SearchResult, knowledge_base
from settings import Settings, load_settings

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "knowledge"
FIXED_MTIME = 1_717_243_200  # 2024-06-01 12:00 UTC: that date in almost every time zone


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    base = KnowledgeBase(tmp_path_factory.mktemp("kb") / "knowledge.sqlite3", SHIPPED)
    assert base.ensure_built() is True
    return base


@pytest.fixture
def small_dir(tmp_path: Path) -> Path:
    """A private copy of three shipped articles, so tests can add and change files freely."""
    src = tmp_path / "articles"
    src.mkdir()
    for path in sorted(SHIPPED.glob("*.md"))[:3]:
        shutil.copy(path, src / path.name)
        os.utime(src / path.name, (FIXED_MTIME, FIXED_MTIME))
    return src


def titles(result: SearchResult) -> list[str]:
    return [h.title for h in result.hits]


def test_shipped_folder_has_complete_articles() -> None:
    files = sorted(SHIPPED.glob("*.md"))
    assert len(files) >= 60
    assert not list(SHIPPED.glob("README*"))
    seen_titles = set()
    for path in files:
        assert re.fullmatch(r"\d{3}-[a-z0-9-]+\.md", path.name), path.name
        assert path.read_text(encoding="utf-8").startswith("---\ntitle: "), path.name
        article = read_article(path, path.name)
        assert article.title and article.title != path.stem, path.name
        assert article.tags, path.name
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", article.date), path.name
        assert 150 <= len(article.body) <= 500, path.name
        seen_titles.add(article.title)
    assert len(seen_titles) == len(files)


@pytest.mark.parametrize(
    ("query", "expected_title"),
    [
        ("統計", "統計の基本：平均・中央値・分散"),  # 2 chars: instr path
        ("機械学習", "機械学習とは"),  # 3+ chars: FTS5 trigram path
        ("形態素解析", "日本語の形態素解析"),
        ("勾配ブースティング", "勾配ブースティング"),
        ("ボコーダ", "ニューラルボコーダ"),
    ],
)
def test_term_in_title_ranks_first(kb: KnowledgeBase, query: str, expected_title: str) -> None:
    result = kb.search(query)
    assert result.hits[0].title == expected_title
    assert result.total >= len(result.hits) > 1  # other articles mention it in the body


@pytest.mark.parametrize("query", ["AI", "ai", "ＡＩ"])
def test_two_letter_ascii_query_is_case_insensitive(kb: KnowledgeBase, query: str) -> None:
    result = kb.search(query, limit=10)
    assert result.total >= 10
    assert all("AI" in h.title for h in result.hits[:3])
    assert "「AI」" in result.hits[0].snippet


def test_short_and_long_japanese_queries_find_the_right_articles(kb: KnowledgeBase) -> None:
    assert any("音声認識" in t for t in titles(kb.search("音声")))
    recognition = kb.search("音声認識", limit=3)
    assert all("音声認識" in t for t in titles(recognition))
    assert "「音声認識」" in recognition.hits[0].snippet
    assert "Whisperと多言語音声認識" in titles(kb.search("whisper"))


def test_mixed_query_uses_and_semantics(kb: KnowledgeBase) -> None:
    both = kb.search("音声 ボコーダ", limit=20)
    assert set(titles(both)) == {"ニューラルボコーダ", "音声合成（TTS）"}
    assert both.total == len(both.hits) < kb.search("音声", limit=20).total
    assert all("ボコーダ" in h.title + h.snippet or "「音声」" in h.snippet for h in both.hits)


def test_mixed_query_falls_back_to_or(kb: KnowledgeBase) -> None:
    result = kb.search("ペンギン 統計")
    assert result.hits[0].title == "統計の基本：平均・中央値・分散"


FTS_SYNTAX_QUERIES = [
    *['"', '""', "*", "NEAR", "NEAR(a b)", "(", ")", "AND OR", "a:b", "^AI", "-統計", "k-means"],
    *['機械"学習', "機械学習*", 'NEAR("機械学習" "音声認識", 5)', '"機械学習" OR "統計"', "{title}: AI"],
]


@pytest.mark.parametrize("query", FTS_SYNTAX_QUERIES)
def test_fts_syntax_in_user_input_never_raises(kb: KnowledgeBase, query: str) -> None:
    result = kb.search(query)
    assert isinstance(result, SearchResult)
    json.dumps(result.to_dict(), ensure_ascii=False)


def test_fts_syntax_characters_are_treated_as_text(kb: KnowledgeBase) -> None:
    assert kb.search('機械"学習').hits[0].title == "機械学習とは"
    assert kb.search("機械学習*").hits[0].title == "機械学習とは"


@pytest.mark.parametrize("query", ["", "   ", "\u3000", "、。"])
def test_empty_query_returns_no_hits(kb: KnowledgeBase, query: str) -> None:
    result = kb.search(query)
    assert result.hits == () and result.total == 0


def test_no_match_and_limit_clamping(kb: KnowledgeBase) -> None:
    assert kb.search("テレポーテーション").total == 0
    assert len(kb.search("学習", limit=0).hits) == 1
    assert len(kb.search("学習", limit=500).hits) == 20


def test_to_dict_shape(kb: KnowledgeBase) -> None:
    data = kb.search("統計", limit=2).to_dict()
    assert set(data) == {"query", "total", "query_ms", "hits"}
    assert data["query"] == "統計" and data["total"] >= 2 and data["query_ms"] >= 0
    hit = data["hits"][0]
    assert set(hit) == {"title", "snippet", "tags", "date", "source", "score"}
    assert isinstance(hit["tags"], list) and "統計" in hit["tags"]
    assert hit["source"].endswith(".md") and hit["date"] == "2024-07-16"
    assert data["hits"][0]["score"] >= data["hits"][1]["score"]
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data


def test_second_instance_reuses_the_built_db(kb: KnowledgeBase) -> None:
    assert KnowledgeBase(kb.db_path, SHIPPED).ensure_built() is False


def test_rebuilds_when_files_are_added_or_changed(small_dir: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "db" / "kb.sqlite3", small_dir)
    assert kb.ensure_built() is True
    assert kb.ensure_built() is False
    assert kb.search("ペンギン").total == 0

    new = small_dir / "900-penguin.md"
    front_matter = "---\ntitle: ペンギンの生態\ntags: 動物, 鳥\ndate: 2024-03-01\n---\n"
    new.write_text(front_matter + "南極の鳥です。\n", "utf-8")
    os.utime(new, (FIXED_MTIME, FIXED_MTIME))
    assert kb.search("ペンギン").hits[0].title == "ペンギンの生態"
    assert kb.ensure_built() is False

    # Same size, new content: the explicit mtime change is what reveals the edit.
    new.write_text(new.read_text("utf-8").replace("ペンギン", "アザラシ"), "utf-8")
    os.utime(new, (FIXED_MTIME + 60, FIXED_MTIME + 60))
    assert kb.ensure_built() is True
    assert kb.search("ペンギン").total == 0
    assert kb.search("アザラシ").hits[0].tags == ("動物", "鳥")

    new.unlink()
    assert kb.ensure_built() is True
    assert kb.search("アザラシ").total == 0


def test_rebuild_leaves_no_temp_files(small_dir: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "db" / "kb.sqlite3", small_dir)
    kb.ensure_built()
    (small_dir / "extra.txt").write_text("追加の文書です。", "utf-8")
    assert kb.ensure_built() is True
    assert not [p.name for p in (tmp_path / "db").iterdir() if not p.name.startswith("kb.sqlite3")]


def test_user_files_without_front_matter(small_dir: Path, tmp_path: Path) -> None:
    (small_dir / "memo.txt").write_text("社内の用語集\n\n略語のRAGは検索拡張生成のことです。", "utf-8")
    (small_dir / "notes.md").write_text("前置き\n\n# 会議メモ\n\nロードマップを議論した。\n", "utf-8")
    (small_dir / "README.md").write_text("# このフォルダについて\nロードマップ\n", "utf-8")
    for name in ("memo.txt", "notes.md"):
        os.utime(small_dir / name, (FIXED_MTIME, FIXED_MTIME))
    kb = KnowledgeBase(tmp_path / "kb.sqlite3", small_dir)

    memo = kb.search("RAG").hits[0]
    assert (memo.title, memo.tags, memo.source) == ("memo", (), "memo.txt")
    assert memo.date == read_article(small_dir / "memo.txt", "memo.txt").date
    assert memo.date in {"2024-05-31", "2024-06-01", "2024-06-02"}
    assert "「rag」" in memo.snippet.lower()

    roadmap = kb.search("ロードマップ")
    assert titles(roadmap) == ["会議メモ"]  # README* is skipped
    assert kb.search("略語").total == 1


def test_build_from_records_and_prebuilt_db(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "records.sqlite3")
    kb.build_from_records(
        [
            Article("音声の基礎", "音声は空気の振動です。", ("音声",), "2024-01-01", "a"),
            Article("画像の基礎", "画像は画素の集まりです。音声とは違います。", ("画像",), "2024-01-02", "b"),
        ]
    )
    assert kb.ensure_built() is False  # no source folder: the DB is used as is
    assert titles(kb.search("音声")) == ["音声の基礎", "画像の基礎"]
    assert titles(kb.search("画素の集まり")) == ["画像の基礎"]
    with sqlite3.connect(kb.db_path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"documents", "meta"} <= tables
    assert any(Path(f"{kb.db_path}.tantivy").iterdir())  # the term index lives beside the catalogue


def test_corrupt_db_file_is_rebuilt(small_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "kb.sqlite3"
    db.write_bytes(b"not a database at all" * 100)
    kb = KnowledgeBase(db, small_dir)
    assert kb.ensure_built() is True
    assert kb.search("学習").total >= 1


def test_concurrent_searches_from_threads(small_dir: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "kb.sqlite3", small_dir)  # first calls race to build it
    queries = ["学習", "AI", "機械学習", "データ", "ラベル", "教師あり学習"] * 10
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(kb.search, queries))
    assert all(r.total >= 1 for r in results)
    assert {r.query for r in results} == set(queries)


async def test_searches_via_asyncio_to_thread(kb: KnowledgeBase) -> None:
    queries = ["AI", "統計", "機械学習", "音声認識"] * 5
    results = await asyncio.gather(*(asyncio.to_thread(kb.search, q, 3) for q in queries))
    assert [r.query for r in results] == queries
    assert all(len(r.hits) == 3 for r in results)


def test_concurrent_searches_during_rebuilds(small_dir: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "kb.sqlite3", small_dir)
    kb.ensure_built()
    extra = small_dir / "extra.md"

    def touch(i: int) -> None:
        extra.write_text(f"# 追加{i}\n機械学習の追加メモ{i}", "utf-8")
        os.utime(extra, (FIXED_MTIME + i, FIXED_MTIME + i))

    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = [(touch, i) if i % 5 == 0 else (kb.search, "機械学習") for i in range(60)]
        results = [f.result() for f in [pool.submit(fn, arg) for fn, arg in jobs]]
    assert all(r.total >= 1 for r in results if isinstance(r, SearchResult))


def test_one_shared_knowledge_base_per_db_path(tmp_path: Path) -> None:
    kb = knowledge_base(tmp_path / "kb.sqlite3")
    assert kb.db_path == tmp_path / "kb.sqlite3" and kb.source_dir == SHIPPED
    assert knowledge_base(tmp_path / "kb.sqlite3") is kb  # one build lock per DB path
    other = knowledge_base(tmp_path / "other.sqlite3")
    assert other is not kb
    kb.stop_watching()
    other.stop_watching()


def test_db_path_comes_from_the_settings_and_defaults_outside_the_repo(tmp_path: Path) -> None:
    assert load_settings({"SEARCH_DB_PATH": str(tmp_path / "kb.sqlite3")}).search_db_path == tmp_path / "kb.sqlite3"
    default = load_settings({}).search_db_path
    assert default == Settings().search_db_path
    assert SHIPPED.parent not in default.resolve().parents
