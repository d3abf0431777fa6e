"""The on-disk index: a SQLite catalogue of the documents (file state, title, text) and a tantivy index of their
Sudachi tokens beside it (`<SEARCH_DB_PATH>.tantivy/`), ranked by BM25.

tantivy answers a top-10 over 100,000 documents in a few milliseconds, common words included, where SQLite
FTS5's bm25() scores every match (50-140 ms for a word in a quarter of the documents; bench_search.py).
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

import tantivy

from services.documents import Article, FileState
from services.japanese import Phrase, analyser, analyser_version

log = logging.getLogger(__name__)

SCHEMA_VERSION = "4"  # part of the stamp: bump it when the schema or the reading of files changes
SCHEMA = """
CREATE TABLE documents (id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
                        mtime_ns INTEGER NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL, tags TEXT NOT NULL,
                        date TEXT NOT NULL, skipped TEXT);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Short-unit and long-unit Sudachi tokens of the title (and tags) and of the body, space-joined.
FIELDS = ("title_short", "title_long", "body_short", "body_long")
TITLE_BOOST = 10.0  # a word in the title or the tags counts ten times a word in the body
WRITER_HEAP = 50_000_000


def stamp() -> str:
    return f"{SCHEMA_VERSION}; {analyser_version()}; tantivy {importlib.metadata.version('tantivy')}"


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("id", stored=True, indexed=True, fast=True)
    for name in FIELDS:  # our tokens are final: tantivy only splits them at the spaces
        builder.add_text_field(name, tokenizer_name="whitespace", index_option="position")
    return builder.build()


SCHEMA_TANTIVY = _schema()


class Index:
    """Writing is serialised by the caller (KnowledgeBase holds a lock); reading is safe from any thread."""

    def __init__(self, db_path: Path, source: str) -> None:
        self.db_path = db_path
        self.terms_path = Path(f"{db_path}.tantivy")
        self.source = source  # the folder the index is of; another folder means a fresh index
        self._conn: sqlite3.Connection | None = None
        self._terms: tantivy.Index | None = None
        self._writer: tantivy.IndexWriter | None = None

    # -- writing ---------------------------------------------------------------------------------------
    def open(self, reset: bool = False) -> dict[str, tuple[int, FileState]]:
        """Connect (creating or recreating the index if needed); what the index holds, by source."""
        if self._conn is None or reset or not self.db_path.exists():
            self._connect(reset)
        assert self._conn is not None
        rows = self._conn.execute("SELECT source, id, size, mtime_ns FROM documents")
        return {source: (doc_id, FileState(size, mtime)) for source, doc_id, size, mtime in rows}

    def _connect(self, reset: bool) -> None:
        self.close()
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        if not reset and self.db_path.exists() and self._reuse():
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(self.terms_path, ignore_errors=True)
        self.terms_path.mkdir(parents=True)
        conn = sqlite3.connect(self.db_path, check_same_thread=False)
        conn.executescript("PRAGMA journal_mode=WAL;" + SCHEMA)
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [("stamp", stamp()), ("source", self.source)])
        conn.commit()
        self._conn, self._terms = conn, tantivy.Index(SCHEMA_TANTIVY, path=str(self.terms_path))

    def _reuse(self) -> bool:
        """Keep the index on disk if it is of this folder, made the same way, and whole."""
        try:
            conn = sqlite3.connect(self.db_path, check_same_thread=False)
            if dict(conn.execute("SELECT key, value FROM meta")) != {"stamp": stamp(), "source": self.source}:
                log.info("ナレッジベースの索引を作り直します（解析器・形式・フォルダのいずれかが変わりました）")
            elif (terms := self._open_terms()) is not None:
                indexed = conn.execute("SELECT count(*) FROM documents WHERE skipped IS NULL").fetchone()[0]
                if terms.searcher().num_docs == indexed:  # a crash between the two commits shows here
                    self._conn, self._terms = conn, terms
                    return True
                log.info("ナレッジベースの索引が不完全なため作り直します: %s", self.terms_path)
            conn.close()
        except sqlite3.Error:  # corrupt or foreign file: start again
            log.info("ナレッジベースの索引が読めないため作り直します: %s", self.db_path)
        return False

    def _open_terms(self) -> tantivy.Index | None:
        try:
            return tantivy.Index.open(str(self.terms_path)) if tantivy.Index.exists(str(self.terms_path)) else None
        except ValueError:
            return None

    def _terms_writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            assert self._terms is not None
            self._writer = self._terms.writer(heap_size=WRITER_HEAP, num_threads=1)
        return self._writer

    def add(self, article: Article, state: FileState) -> None:
        assert self._conn is not None
        heading = f"{article.title}\n{', '.join(article.tags)}"
        tokens = (*analyser().index_text(heading), *analyser().index_text(article.body))  # first: it may fail
        cursor = self._conn.execute(
            "INSERT INTO documents (source, size, mtime_ns, title, body, tags, date) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (article.source, state.size, state.mtime_ns, article.title, article.body, ", ".join(article.tags),
             article.date))
        fields = dict(zip(FIELDS, tokens, strict=True))
        self._terms_writer().add_document(tantivy.Document(id=cursor.lastrowid, **fields))

    def add_skipped(self, source: str, state: FileState, reason: str) -> None:
        """Remember a bad file with its size and time, so it is not read (and logged) again until it changes."""
        assert self._conn is not None
        self._conn.execute("INSERT INTO documents (source, size, mtime_ns, title, body, tags, date, skipped)"
                           " VALUES (?, ?, ?, '', '', '', '', ?)", (source, state.size, state.mtime_ns, reason))

    def delete(self, doc_id: int) -> None:
        assert self._conn is not None
        self._terms_writer().delete_documents_by_term("id", doc_id)
        self._conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def commit(self, final: bool = True) -> None:
        """Terms first: after a crash between the two, the counts differ and the next start rebuilds."""
        if self._writer is not None:
            self._writer.commit()
            if final:  # let go of tantivy's writer lock: another instance (a restart, a test) may write next
                self._writer.wait_merging_threads()
                self._writer = None
            assert self._terms is not None
            self._terms.reload()
        if self._conn is not None:
            self._conn.commit()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.rollback()
            self._writer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- reading ---------------------------------------------------------------------------------------
    def top(self, query: tantivy.Query, limit: int) -> tuple[list[tuple[int, float]], int]:
        """(id, score) of the best `limit` documents, and how many match."""
        terms = self._terms or self._open_terms()
        if terms is None:
            return [], 0
        self._terms = terms
        searcher = terms.searcher()
        found = searcher.search(query, limit, count=True)
        ids = searcher.fast_field_values("id", [address for _, address in found.hits]) if found.hits else []
        return [(int(i), score) for i, (score, _) in zip(ids, found.hits, strict=True)], found.count or 0

    def rows(self, ids: list[int]) -> dict[int, tuple]:
        """id → (title, body, tags, date, source)."""
        if not ids or not self.db_path.exists():
            return {}
        with closing(sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            sql = f"SELECT id, title, body, tags, date, source FROM documents WHERE id IN ({','.join('?' * len(ids))})"
            return {r[0]: r[1:] for r in conn.execute(sql, ids)}


def _field_query(field: str, tokens: tuple[str, ...]) -> tantivy.Query:
    query = (tantivy.Query.term_query(SCHEMA_TANTIVY, field, tokens[0]) if len(tokens) == 1
             else tantivy.Query.phrase_query(SCHEMA_TANTIVY, field, list(tokens)))
    return tantivy.Query.boost_query(query, TITLE_BOOST) if field.startswith("title") else query


def _any_field(pairs: Iterable[tuple[str, tuple[str, ...]]]) -> tantivy.Query:
    should = tantivy.Occur.Should
    return tantivy.Query.boolean_query([(should, _field_query(field, tokens)) for field, tokens in pairs if tokens])


def phrase_query(phrase: Phrase) -> tantivy.Query:
    """The phrase in the short-unit or the long-unit fields (附属品 ~ 付属 品, かつ丼 ~ カツ丼), title or body."""
    return _any_field((f, phrase.short if f.endswith("short") else phrase.long) for f in FIELDS)


def word_query(word: str) -> tantivy.Query:
    return _any_field((f, (word,)) for f in ("title_short", "body_short"))


def queries(phrases: list[Phrase]) -> list[tantivy.Query]:
    """What to match, strictest first, until something does: every phrase; every word of the phrases
    (ファームウェア更新中 in a document that says ファームウェアを…更新中は); any word."""
    must, should = tantivy.Occur.Must, tantivy.Occur.Should
    words = list(dict.fromkeys(t for p in phrases for t in p.short))
    stages = [tantivy.Query.boolean_query([(must, phrase_query(p)) for p in phrases])]
    if words != [t for p in phrases for t in p.long] or len(phrases) > 1:  # else the same as the first stage
        stages.append(tantivy.Query.boolean_query([(must, word_query(w)) for w in words]))
    if len(words) > 1:
        stages.append(tantivy.Query.boolean_query([(should, word_query(w)) for w in words]))
    return stages
