"""The knowledge base: a folder of documents kept in an on-disk index (SQLite + tantivy), searched in Japanese.

Every document is indexed as Sudachi's normalised tokens (services/japanese.py) and ranked by BM25
(services/index.py). The index is updated in place: a sync re-reads only files whose size or modification time
changed, so a restart or a new file costs only what changed. `start_watching()` syncs every two seconds.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from services.documents import Article, FileState, UnreadableFile, read_all, scan, split_tags
from services.index import Index, queries
from services.japanese import Phrase, analyser
from settings import DEFAULT_KNOWLEDGE_DIR

log = logging.getLogger(__name__)

SNIPPET_CHARS = 40
WATCH_INTERVAL = 2.0  # seconds between two scans of the folder
FIRST_SYNC_WAIT = 10.0  # a search right after start waits this long for the first pass, then searches what is there


@dataclass(frozen=True)
class Hit:
    title: str
    snippet: str
    tags: tuple[str, ...]  # tuple, not list, so frozen Hits stay hashable
    date: str
    source: str  # the document's file, relative to the folder: where the answer came from
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


@dataclass(frozen=True)
class Changes:
    """What one sync did."""

    added: int = 0
    changed: int = 0
    deleted: int = 0
    skipped: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.deleted or self.skipped)


def cut_snippet(body: str, match: tuple[int, int] | None) -> str:
    """A short window of the document's own text around the match, the match in 「」."""
    if match is None:
        flat = " ".join(body[: SNIPPET_CHARS * 4].split())
        return flat[:SNIPPET_CHARS] + ("…" if len(body) > SNIPPET_CHARS else "")
    pos, length = match
    # A little context before the hit, but not across a sentence end (。).
    start = max(pos - SNIPPET_CHARS // 3, body.rfind("。", 0, pos) + 1, body.rfind("\n", 0, pos) + 1)
    stop, end = pos + length, min(len(body), pos + length + SNIPPET_CHARS - (pos - start))
    head, tail = "…" * (start > 0), "…" * (end < len(body))
    flat = [" ".join(part.split()) for part in (body[start:pos], body[pos:stop], body[stop:end])]
    return f"{head}{flat[0]}「{flat[1]}」{flat[2]}{tail}"


class KnowledgeBase:
    """Searchable documents. `source_dir=None`: an index written by `build_from_records`, never synced."""

    def __init__(self, db_path: Path, source_dir: Path | None = None) -> None:
        self.db_path = Path(db_path)
        self.source_dir = Path(source_dir) if source_dir is not None else None
        self._index = Index(self.db_path, str(self.source_dir.resolve()) if self.source_dir else "records")
        self._lock = threading.Lock()
        self._seen: dict[str, FileState] | None = None  # the folder as the last sync left the index
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._first_sync = threading.Event()

    # -- keeping the index current -------------------------------------------------------------------
    def sync(self) -> Changes:
        """Bring the index in line with the folder; reads only new and changed files."""
        if self.source_dir is None:
            return Changes()
        if not self.source_dir.is_dir():  # an unplugged drive: keep the index rather than empty it
            if self._seen is not None or not self.db_path.exists():
                log.warning("ナレッジベースのフォルダが見つかりません: %s", self.source_dir)
            self._seen = None
            return Changes()
        if scan(self.source_dir) == self._seen and self.db_path.exists():
            return Changes()  # fast path: stat() calls only, no SQLite
        with self._lock:
            files = scan(self.source_dir)
            known = self._index.open()
            gone = [source for source in known if source not in files]
            todo = sorted(source for source, state in files.items() if known.get(source, (0, None))[1] != state)
            if not gone and not todo:
                self._seen = files
                return Changes()
            started, skipped, last_note = time.monotonic(), 0, time.monotonic()
            if len(todo) >= 200:
                log.info("ナレッジベースの索引を作っています: %d 件（%s）", len(todo), self.source_dir)
            for source in gone:
                self._index.delete(known[source][0])
            for done, (source, article) in enumerate(read_all(self.source_dir, todo), 1):
                if source in known:
                    self._index.delete(known[source][0])
                skipped += not self._add(source, article, files[source])
                if time.monotonic() - last_note >= 5.0:
                    log.info("ナレッジベースの索引: %d / %d 件", done, len(todo))
                    last_note = time.monotonic()
                    self._index.commit(final=False)  # searches meanwhile see what is done so far
            self._index.commit()
            self._seen = files
            added = sum(1 for s in todo if s not in known)
            changes = Changes(added, len(todo) - added, len(gone), skipped)
            log.info("ナレッジベースを更新しました: 追加 %d、変更 %d、削除 %d、読み飛ばし %d（%.1f 秒）",
                     changes.added, changes.changed, changes.deleted, changes.skipped, time.monotonic() - started)
            return changes

    def _add(self, source: str, article: Article | UnreadableFile, state: FileState) -> bool:
        """Index one file, or remember it as skipped with one log line; True if indexed."""
        if isinstance(article, Article):
            try:
                self._index.add(article, state)
                return True
            except Exception as exc:  # the analyser failing on one text must not stop the rest
                article = UnreadableFile(f"解析できません: {type(exc).__name__}")
        log.warning("ナレッジベース: %s を読み飛ばしました（%s）", source, article)
        self._index.add_skipped(source, state, str(article))
        return False

    def ensure_built(self) -> bool:
        """Sync; True if anything in the index changed."""
        return bool(self.sync())

    def build_from_records(self, records: Iterable[Article]) -> None:
        """Write the index from in-memory records (benchmarks, prebuilt corpora), replacing what was there."""
        with self._lock:
            self._index.open(reset=True)
            for i, article in enumerate(records, 1):
                self._index.add(article, FileState(0, 0))
                if i % 20_000 == 0:
                    self._index.commit(final=False)
            self._index.commit()

    def start_watching(self, interval: float = WATCH_INTERVAL) -> None:
        """Sync now and then every `interval` seconds on a daemon thread, until `stop_watching()`."""
        if self._watcher is None and self.source_dir is not None:
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, args=(interval,), name="knowledge-watcher",
                                             daemon=True)
            self._watcher.start()

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._stop.set()
            self._watcher.join()
            self._watcher = None

    def _watch(self, interval: float) -> None:
        failure = ""  # logged once, not every two seconds while it lasts
        while True:
            try:
                self.sync()
                if failure:
                    log.info("ナレッジベースの更新が再開しました")
                failure = ""
            except (sqlite3.Error, OSError, ValueError) as exc:  # a full disk, an unwritable or locked index
                if str(exc) != failure:  # (tantivy's LockBusy is a ValueError): try again later
                    log.warning("ナレッジベースを更新できませんでした（次の確認で再試行します）: %s", exc)
                failure = str(exc)
            self._first_sync.set()
            if self._stop.wait(interval):
                return

    # -- searching -----------------------------------------------------------------------------------
    def search(self, query: str, limit: int = 5) -> SearchResult:
        if self._watcher is not None:
            self._first_sync.wait(FIRST_SYNC_WAIT)
        else:
            self.sync()
        limit = max(1, min(20, int(limit)))
        phrases = analyser().phrases(query or "")
        if not phrases:
            return SearchResult(query, (), 0, 0.0)
        start = time.perf_counter()
        ranked, total = [], 0
        for stage in queries(phrases):  # partial matches are more useful than nothing
            ranked, total = self._index.top(stage, limit)
            if ranked:
                break
        rows = self._index.rows([doc_id for doc_id, _ in ranked])
        hits = tuple(self._hit(rows[i], score, phrases) for i, score in ranked if i in rows)
        elapsed_ms = round((time.perf_counter() - start) * 1000, 3)
        return SearchResult(query, hits, total, elapsed_ms)

    @staticmethod
    def _hit(row: tuple, score: float, phrases: list[Phrase]) -> Hit:
        title, body, tags, date, source = row
        snippet = cut_snippet(body, analyser().locate(body, phrases, f"{title} {tags}"))
        # bm25 of very common terms is ~1e-6, so keep significant digits rather than decimals.
        return Hit(title, snippet, split_tags(tags), date, source, float(f"{score:.6g}"))


@functools.cache
def knowledge_base(db_path: Path, source_dir: Path = DEFAULT_KNOWLEDGE_DIR) -> KnowledgeBase:
    """The app's knowledge base kept in `db_path` for `source_dir`, watched for changes from now on.

    One instance per path, so every caller shares the build lock and the one watcher.
    """
    base = KnowledgeBase(Path(db_path), Path(source_dir))
    base.start_watching()
    return base
