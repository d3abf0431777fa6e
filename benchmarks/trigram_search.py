"""The knowledge base's search before issue 19 (SQLite FTS5 trigram + instr() for short terms), kept only so
the benchmarks can compare against it. Not used by the app."""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Iterable

from services.documents import Article

SCHEMA = """
CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL,
                       tags TEXT NOT NULL, date TEXT NOT NULL, source TEXT NOT NULL);
CREATE VIRTUAL TABLE articles_fts USING fts5(title, body, tags, content='articles',
                                             content_rowid='id', tokenize='trigram');
"""
MIN_FTS_CHARS = 3
LIKE, INSTR = "(a.{c} LIKE :l{i} ESCAPE '\\')", "(instr(a.{c}, :t{i}) > 0)"
BM25 = "bm25(articles_fts, 10.0, 1.0, 5.0) AS rank"
_SPLIT_RE = re.compile(r"[\s、。，．,.!?！？「」『』（）()\[\]{}【】・:：;；\"'`*^]+")


def split_terms(query: str) -> list[str]:
    terms = [t.lower() for t in _SPLIT_RE.split(unicodedata.normalize("NFKC", query)) if t]
    return list(dict.fromkeys(terms))[:16]


class TrigramSearch:
    def __init__(self, path: str, articles: Iterable[Article]) -> None:
        self.conn = sqlite3.connect(path)
        self.conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
        self.conn.executemany(
            "INSERT INTO articles (title, body, tags, date, source) VALUES (?, ?, ?, ?, ?)",
            ((a.title, a.body, ", ".join(a.tags), a.date, a.source) for a in articles))
        self.conn.execute("INSERT INTO articles_fts(articles_fts) VALUES ('rebuild')")
        self.conn.commit()

    def search(self, query: str, limit: int = 10) -> list[str]:
        """Sources of the top `limit` articles, as the old KnowledgeBase.search ranked them."""
        terms = split_terms(query)
        if not terms:
            return []
        ranked = self._rank(terms, limit, "AND")
        if not ranked and len(terms) > 1:
            ranked = self._rank(terms, limit, "OR")
        ids = [r[0] for r in ranked]
        sources = dict(self.conn.execute(
            f"SELECT id, source FROM articles WHERE id IN ({','.join('?' * len(ids))})", ids))
        return [sources[i] for i in ids]

    def _rank(self, terms: list[str], limit: int, mode: str) -> list[tuple]:
        params: dict[str, object] = {"limit": limit}
        scores: list[str] = []
        conds: list[str] = []
        cte = join = ""
        if long_terms := [t for t in terms if len(t) >= MIN_FTS_CHARS]:
            params["match"] = f" {mode} ".join('"' + t.replace('"', '""') + '"' for t in long_terms)
            cte = f"WITH m AS (SELECT rowid AS id, {BM25} FROM articles_fts WHERE articles_fts MATCH :match) "
            join = ("JOIN" if mode == "AND" else "LEFT JOIN") + " m ON m.id = a.id"
            scores.append("coalesce(-m.rank, 0)")
            conds.append("m.id IS NOT NULL")
        for i, term in enumerate(terms):
            cased = term != term.upper()
            params[f"t{i}"], params[f"l{i}"] = term, "%" + re.sub(r"[%_\\]", r"\\\g<0>", term) + "%"
            title, body, tags = ((LIKE if cased else INSTR).format(c=c, i=i) for c in ("title", "body", "tags"))
            scores.append(f"{title} * 10")
            if len(term) >= MIN_FTS_CHARS:
                continue
            conds.append(f"({title} OR {body} OR {tags})")
            text = "lower(a.body)" if cased else "a.body"
            count = f"(length(a.body) - length(replace({text}, :t{i}, ''))) / {len(term)}"
            scores.append(f"{tags} * 2 + min(8, {count}) * 0.5")
        score, where = " + ".join(scores), f" {mode} ".join(conds)
        sql = f"{cte}SELECT a.id, {score} AS score FROM articles a {join} WHERE {where}"
        return self.conn.execute(f"{sql} ORDER BY score DESC, a.id LIMIT :limit", params).fetchall()
