"""Writing the on-disk search index: one SQLite file, documents plus a contentless FTS5 table of their tokens."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from services.documents import Article, FileState
from services.japanese import analyser, analyser_version

log = logging.getLogger(__name__)

SCHEMA_VERSION = "2"  # part of the stamp: bump it when the schema or the reading of files changes
SCHEMA = """
CREATE TABLE documents (id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
                        mtime_ns INTEGER NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL, tags TEXT NOT NULL,
                        date TEXT NOT NULL, skipped TEXT);
-- Contentless: the text is stored once, in `documents`; the FTS table holds only the index of its tokens.
-- Short-unit and long-unit Sudachi tokens, space-joined; unicode61 just splits them at the spaces.
CREATE VIRTUAL TABLE documents_fts USING fts5(title_short, title_long, body_short, body_long, content='',
                                              tokenize='unicode61 remove_diacritics 0');
INSERT INTO documents_fts(documents_fts, rank) VALUES ('rank', 'bm25(10.0, 10.0, 1.0, 1.0)');
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def stamp() -> str:
    return f"{SCHEMA_VERSION}; {analyser_version()}"


class IndexWriter:
    """The one writing connection to an index; callers serialise its use (KnowledgeBase holds a lock)."""

    def __init__(self, db_path: Path, source: str) -> None:
        self.db_path = db_path
        self.source = source  # the folder the index is of; another folder means a fresh index
        self._conn: sqlite3.Connection | None = None

    def open(self, reset: bool = False) -> dict[str, tuple[int, FileState]]:
        """Connect (creating or recreating the file if needed); what the index holds, by source."""
        if self._conn is None or reset or not self.db_path.exists():
            self._connect(reset)
        assert self._conn is not None
        rows = self._conn.execute("SELECT source, id, size, mtime_ns FROM documents")
        return {source: (doc_id, FileState(size, mtime)) for source, doc_id, size, mtime in rows}

    def _connect(self, reset: bool) -> None:
        self.close()
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        if not reset and self.db_path.exists():
            try:
                conn = sqlite3.connect(self.db_path, check_same_thread=False)
                found = dict(conn.execute("SELECT key, value FROM meta"))
                if found == {"stamp": stamp(), "source": self.source}:
                    self._conn = conn
                    return
                log.info("ナレッジベースの索引を作り直します（解析器・形式・フォルダのいずれかが変わりました）")
                conn.close()
            except sqlite3.Error:  # corrupt or foreign file: start again
                log.info("ナレッジベースの索引が読めないため作り直します: %s", self.db_path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
        conn = sqlite3.connect(self.db_path, check_same_thread=False)
        conn.executescript("PRAGMA journal_mode=WAL;" + SCHEMA)
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [("stamp", stamp()), ("source", self.source)])
        conn.commit()
        self._conn = conn

    def add(self, article: Article, state: FileState) -> None:
        assert self._conn is not None
        cursor = self._conn.execute(
            "INSERT INTO documents (source, size, mtime_ns, title, body, tags, date) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (article.source, state.size, state.mtime_ns, article.title, article.body, ", ".join(article.tags),
             article.date))
        self._conn.execute("INSERT INTO documents_fts (rowid, title_short, title_long, body_short, body_long)"
                            " VALUES (?, ?, ?, ?, ?)",
                           (cursor.lastrowid, *_tokens(_heading(article.title, article.tags), article.body)))

    def add_skipped(self, source: str, state: FileState, reason: str) -> None:
        """Remember a bad file with its size and time, so it is not read (and logged) again until it changes."""
        assert self._conn is not None
        self._conn.execute("INSERT INTO documents (source, size, mtime_ns, title, body, tags, date, skipped)"
                           " VALUES (?, ?, ?, '', '', '', '', ?)", (source, state.size, state.mtime_ns, reason))

    def delete(self, doc_id: int) -> None:
        assert self._conn is not None
        row = self._conn.execute("SELECT title || char(10) || tags, body, skipped FROM documents WHERE id = ?",
                                 (doc_id,)).fetchone()
        if row and row[2] is None:
            # A contentless FTS5 row is deleted by giving its old tokens back; the stamp keeps them reproducible.
            self._conn.execute("INSERT INTO documents_fts (documents_fts, rowid, title_short, title_long, body_short,"
                               " body_long) VALUES ('delete', ?, ?, ?, ?, ?)", (doc_id, *_tokens(*row[:2])))
        self._conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def commit(self) -> None:
        if self._conn is not None:
            self._conn.commit()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _heading(title: str, tags: tuple[str, ...]) -> str:
    """The title column's text: the title and the tags, both weighted as a title."""
    return f"{title}\n{', '.join(tags)}"


def _tokens(title: str, body: str) -> tuple[str, str, str, str]:
    return (*analyser().index_text(title), *analyser().index_text(body))


