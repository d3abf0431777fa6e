"""SQLite FTS5 (trigram) knowledge base built from a folder of Markdown/text articles."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterable
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

SCHEMA_VERSION = "1"  # part of the fingerprint: bump it when schema or parsing change, to force rebuilds
SCHEMA = """
CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL,
                       tags TEXT NOT NULL, date TEXT NOT NULL, source TEXT NOT NULL);
-- External content: text is stored once in `articles`; the FTS table only holds the index.
CREATE VIRTUAL TABLE articles_fts USING fts5(title, body, tags, content='articles',
                                             content_rowid='id', tokenize='trigram');
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SUFFIXES = {".md", ".markdown", ".txt"}
MIN_FTS_CHARS = 3  # trigram FTS5 matches nothing for shorter terms; those go through instr()
SNIPPET_CHARS = 32
# LIKE folds ASCII case ~3x faster than lower()+instr(); for Japanese, instr() is the faster one.
LIKE, INSTR = "(a.{c} LIKE :l{i} ESCAPE '\\')", "(instr(a.{c}, :t{i}) > 0)"
BM25 = "bm25(articles_fts, 10.0, 1.0, 5.0) AS rank"  # column weights: title, body, tags
SNIPPET = f"snippet(articles_fts, 1, '「', '」', '…', {SNIPPET_CHARS})"
_SPLIT_RE = re.compile(r"[\s、。，．,.!?！？「」『』（）()\[\]{}【】・:：;；\"'`*^]+")


@dataclass(frozen=True)
class Article:
    title: str
    body: str
    tags: tuple[str, ...] = ()
    date: str = ""
    source: str = ""


@dataclass(frozen=True)
class Hit:
    title: str
    snippet: str
    tags: tuple[str, ...]  # tuple, not list, so frozen Hits stay hashable
    date: str
    source: str
    score: float  # higher is better


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: tuple[Hit, ...]
    total: int
    query_ms: float

    def to_dict(self) -> dict:
        hits = [{**asdict(h), "tags": list(h.tags)} for h in self.hits]
        return {"query": self.query, "total": self.total, "query_ms": self.query_ms, "hits": hits}


def split_terms(query: str) -> list[str]:
    """Lowercased, de-duplicated terms; NFKC first folds full-width "ＡＩ" and half-width kana."""
    terms = [t.lower() for t in _SPLIT_RE.split(unicodedata.normalize("NFKC", query)) if t]
    return list(dict.fromkeys(terms))[:16]  # bounds the size of the generated SQL


def _split_tags(tags: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in re.split(r"[,、，]", tags.strip("[]")) if t.strip())


def parse_article(path: Path, source: str) -> Article:
    text = path.read_text(encoding="utf-8-sig", errors="replace").replace("\r\n", "\n")
    meta: dict[str, str] = {}
    if text.startswith("---\n") and (end := text.find("\n---", 3)) != -1:
        for key, sep, value in (line.partition(":") for line in text[4:end].splitlines()):
            if sep:
                meta[key.strip().lower()] = value.strip().strip("\"'")
        text = text[end + 4 :].lstrip("-")
    if not (title := meta.get("title", "")):  # user-added files: first Markdown heading, else the file name
        heading = re.search(r"^#{1,6}\s+(.+)$", text, re.MULTILINE)
        title = heading.group(1).strip() if heading else path.stem
    date = meta.get("date") or dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
    return Article(title, text.strip(), _split_tags(meta.get("tags", "")), date, source)


def _cut_snippet(body: str, terms: list[str]) -> str:
    """Hand-made snippet around the first term occurrence (FTS snippet() is unavailable there)."""
    flat = " ".join(body.split())
    found = [(i, t) for t in terms if (i := flat.lower().find(t)) >= 0]
    if not found:
        return flat[:SNIPPET_CHARS] + ("…" if len(flat) > SNIPPET_CHARS else "")
    pos, term = min(found)
    # A little context before the hit, but not across a sentence end (。).
    start, stop = max(pos - SNIPPET_CHARS // 3, flat.rfind("。", 0, pos) + 1), pos + len(term)
    end = min(len(flat), start + SNIPPET_CHARS + len(term))
    head, tail = "…" * (start > 0), "…" * (end < len(flat))
    return f"{head}{flat[start:pos]}「{flat[pos:stop]}」{flat[stop:end]}{tail}"


def _to_hit(row: tuple, score: float, snip: str | None, terms: list[str]) -> Hit:
    title, body, tags, date, source = row
    snippet = " ".join(snip.split()) if snip else _cut_snippet(body, terms)
    # bm25 of very common terms is ~1e-6, so keep significant digits rather than decimals.
    return Hit(title, snippet, _split_tags(tags), date, source, float(f"{score:.6g}"))


class KnowledgeBase:
    """Searchable article DB. `source_dir=None` means a prebuilt DB that is never rebuilt."""

    def __init__(self, db_path: Path, source_dir: Path | None = None) -> None:
        self.db_path = Path(db_path)
        self.source_dir = Path(source_dir) if source_dir is not None else None
        self._lock = threading.Lock()
        self._known_fingerprint: str | None = None

    def _source_files(self) -> list[tuple[str, int, int]]:
        if self.source_dir is None or not self.source_dir.is_dir():
            return []
        # Top-level scandir, not rglob: this runs before every query; DirEntry saves syscalls.
        with os.scandir(self.source_dir) as it:
            # README files document the folder itself; dotfiles are editor/OS litter.
            names = [e for e in it if e.is_file() and not e.name.upper().startswith(("README", "."))]
            entries = [e for e in names if os.path.splitext(e.name)[1].lower() in SUFFIXES]
        return sorted((e.name, (st := e.stat()).st_size, st.st_mtime_ns) for e in entries)

    @staticmethod
    def _fingerprint(files: list[tuple[str, int, int]]) -> str:
        return hashlib.sha256(repr((SCHEMA_VERSION, files)).encode()).hexdigest()

    def ensure_built(self) -> bool:
        """Build or rebuild the DB if the source files changed. True if it (re)built."""
        if self.source_dir is None:
            return False
        # Fast path: a few stat() calls, no SQLite open, once this process has seen the DB current.
        if self._fingerprint(self._source_files()) == self._known_fingerprint and self.db_path.exists():
            return False
        with self._lock:
            files = self._source_files()
            fp = self._fingerprint(files)
            try:
                with closing(self._connect()) as conn:
                    stored = conn.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
            except sqlite3.Error:  # missing, corrupt or foreign file: just rebuild it
                stored = None
            if rebuilt := stored != (fp,):
                self._write_db((parse_article(self.source_dir / f[0], f[0]) for f in files), fp)
            self._known_fingerprint = fp
            return rebuilt

    def build_from_records(self, records: Iterable[Article]) -> None:
        """Write the DB from in-memory records (benchmarks, tests, prebuilt corpora)."""
        with self._lock:
            self._write_db(records, "records")

    def _write_db(self, records: Iterable[Article], fingerprint: str) -> None:
        # Build into a temp file and atomically swap it in: readers never see a half-built DB.
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{self.db_path}.{os.getpid()}-{threading.get_ident()}.tmp"  # unique per builder
        try:
            with closing(sqlite3.connect(tmp)) as conn:
                conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
                conn.executemany(
                    "INSERT INTO articles (title, body, tags, date, source) VALUES (?, ?, ?, ?, ?)",
                    ((a.title, a.body, ", ".join(a.tags), a.date, a.source) for a in records),
                )
                conn.execute("INSERT INTO articles_fts(articles_fts) VALUES ('rebuild')")
                conn.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fingerprint,))
                conn.commit()
            os.replace(tmp, self.db_path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _connect(self) -> sqlite3.Connection:
        # One read-only connection per call: safe across threads, and never creates an empty DB.
        return sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro", uri=True)

    def search(self, query: str, limit: int = 5) -> SearchResult:
        self.ensure_built()
        limit = max(1, min(20, int(limit)))
        terms = split_terms(query or "")
        if not terms:
            return SearchResult(query, (), 0, 0.0)
        start = time.perf_counter()
        with closing(self._connect()) as conn:
            ranked, match = self._rank(conn, terms, limit, "AND")
            if not ranked and len(terms) > 1:  # partial matches are more useful than nothing
                ranked, match = self._rank(conn, terms, limit, "OR")
            # Text and snippets only for the top rows: computing them for every match is ~5x slower.
            ids, qs = [r[0] for r in ranked], ",".join("?" * len(ranked))
            sql = f"SELECT id, title, body, tags, date, source FROM articles WHERE id IN ({qs})"
            rows = {r[0]: r[1:] for r in conn.execute(sql, ids)}
            sql = f"SELECT rowid, {SNIPPET} FROM articles_fts WHERE articles_fts MATCH ? AND rowid IN ({qs})"
            snippets = dict(conn.execute(sql, [match, *ids])) if match else {}
        elapsed_ms = round((time.perf_counter() - start) * 1000, 3)
        hits = tuple(_to_hit(rows[i], score, snippets.get(i), terms) for i, score, _ in ranked)
        return SearchResult(query, hits, ranked[0][2] if ranked else 0, elapsed_ms)

    @staticmethod
    def _rank(conn: sqlite3.Connection, terms: list[str], limit: int, mode: str) -> tuple[list[tuple], str]:
        """Top (id, score, total) rows, plus the FTS5 match expression used ("" if none)."""
        params: dict[str, object] = {"limit": limit}
        scores: list[str] = []
        conds: list[str] = []
        cte = join = match = ""
        if long_terms := [t for t in terms if len(t) >= MIN_FTS_CHARS]:
            # A quoted FTS5 string is always a literal phrase, so user input can never inject syntax.
            params["match"] = match = f" {mode} ".join('"' + t.replace('"', '""') + '"' for t in long_terms)
            cte = f"WITH m AS (SELECT rowid AS id, {BM25} FROM articles_fts WHERE articles_fts MATCH :match) "
            join = ("JOIN" if mode == "AND" else "LEFT JOIN") + " m ON m.id = a.id"
            scores.append("coalesce(-m.rank, 0)")
            conds.append("m.id IS NOT NULL")
        for i, term in enumerate(terms):
            cased = term != term.upper()  # i.e. contains ASCII (or other cased) letters
            params[f"t{i}"], params[f"l{i}"] = term, "%" + re.sub(r"[%_\\]", r"\\\g<0>", term) + "%"
            title, body, tags = ((LIKE if cased else INSTR).format(c=c, i=i) for c in ("title", "body", "tags"))
            # A title hit outweighs all else one term can add (bm25 saturates, tags 2, body max 4).
            scores.append(f"{title} * 10")
            if len(term) >= MIN_FTS_CHARS:
                continue  # already matched and bm25-ranked through FTS5
            conds.append(f"({title} OR {body} OR {tags})")
            text = "lower(a.body)" if cased else "a.body"  # only matching rows pay for lower()
            count = f"(length(a.body) - length(replace({text}, :t{i}, ''))) / {len(term)}"
            scores.append(f"{tags} * 2 + min(8, {count}) * 0.5")
        score, where = " + ".join(scores), f" {mode} ".join(conds)
        sql = f"{cte}SELECT a.id, {score} AS score, count(*) OVER () FROM articles a {join} WHERE {where}"
        return conn.execute(f"{sql} ORDER BY score DESC, a.id LIMIT :limit", params).fetchall(), match


ARTICLES_DIR = Path(__file__).resolve().parent.parent / "data" / "knowledge"


@functools.cache
def knowledge_base(db_path: Path, source_dir: Path = ARTICLES_DIR) -> KnowledgeBase:
    """The knowledge base kept in `db_path`, built from the repo's articles.

    One instance per path, so every caller shares the build lock and the fast-path fingerprint.
    """
    return KnowledgeBase(Path(db_path), source_dir)
