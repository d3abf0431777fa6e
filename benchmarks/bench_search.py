"""Search latency (median and p95, top 10) over the shipped articles and a large synthetic corpus, and
the index's build time and size per 10,000 documents.

Usage: python benchmarks/bench_search.py [--rows 100000] [--runs 15] [--trigram]

Two figures per query: `query_ms` is the time the KnowledgeBase reports itself (ranking, rows, snippets),
`call_ms` is the wall time of the whole `search()` call (with the query's analysis and the folder check).
Relevance is measured separately, in bench_relevance.py.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere

from benchmarks.trigram_search import TrigramSearch
from services.documents import Article
from services.knowledge import KnowledgeBase
from settings import DEFAULT_KNOWLEDGE_DIR

QUERIES = {
    "1-2 chars": ["AI", "統計", "音声", "ai"],
    "3+ chars": ["機械学習", "音声認識", "ニューラルネットワーク", "transformer"],
    "mixed": ["音声 合成", "AI 倫理", "機械学習 評価"],
}
# Rare terms: one in every 1,000 and 10,000 rows (written 申し込み, searched as 申込), and two of the random words.
RARE_SENTENCES = {1000: "量子化の手順を確認しました。", 10_000: "申し込みを受け付けました。"}
# Each topic word lands in roughly a quarter of the synthetic rows: a deliberately unselective worst case.
# fmt: off
TOPICS = [
    "機械学習", "深層学習", "音声認識", "音声合成", "統計", "AI", "データ", "モデル", "推薦", "画像", "言語モデル",
    "強化学習", "特徴量", "予測", "分類", "回帰", "検索", "倫理", "評価", "学習率", "ニューラルネットワーク",
    "Transformer", "GPU", "クラスタリング", "異常検知", "翻訳", "要約",
]
VERBS = ["改善します", "評価しました", "予測できます", "分析しました", "比較します", "検証しました", "導入しました"]
# fmt: on
KANA = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン"


def vocabulary(seed: int = 42) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(KANA, k=rng.randint(3, 6))) for _ in range(5000)]


def synthetic_articles(rows: int, seed: int = 42) -> Iterator[Article]:
    """Japanese-ish rows: real topic words mixed with random katakana words for a varied index."""
    words = vocabulary(seed)
    rng = random.Random(seed + 1)

    def noun() -> str:
        return rng.choice(TOPICS) if rng.random() < 0.3 else rng.choice(words)

    for i in range(rows):
        sentences = [f"{noun()}を使って{noun()}の{noun()}を{rng.choice(VERBS)}。" for _ in range(rng.randint(4, 7))]
        sentences += [text for every, text in RARE_SENTENCES.items() if i % every == 7]
        tags = tuple(rng.sample(TOPICS, 2))
        yield Article(f"{noun()}と{noun()}の{noun()}", "".join(sentences), tags, "2024-01-01", f"synthetic/{i}")


def disk_bytes(folder: Path, prefix: str) -> int:
    """The catalogue, its journal and the term index beside it."""
    return sum(p.stat().st_size for p in folder.rglob(f"{prefix}*") if p.is_file())


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def bench(kb: KnowledgeBase, runs: int, groups: dict[str, list[str]]) -> None:
    kb.search("ウォームアップ")  # builds if needed and warms the page cache
    everything: list[float] = []
    for group, queries in groups.items():
        group_query, group_call = [], []
        for q in queries:
            query_ms, call_ms, total = [], [], 0
            for _ in range(runs):
                start = time.perf_counter()
                result = kb.search(q, limit=10)
                call_ms.append((time.perf_counter() - start) * 1000)
                query_ms.append(result.query_ms)
                total = result.total
            group_query += query_ms
            group_call += call_ms
            print(
                f"  {q!r:28} total={total:>6}  query_ms={statistics.median(query_ms):8.3f}"
                f"  call_ms={statistics.median(call_ms):8.3f}"
            )
        everything += group_call
        print(
            f"  -> {group:9} median query_ms={statistics.median(group_query):8.3f}"
            f"  call_ms={statistics.median(group_call):8.3f}  p95 call_ms={p95(group_call):8.3f}"
        )
    print(f"  => all queries: median call_ms={statistics.median(everything):.3f}  p95={p95(everything):.3f}")


def bench_trigram(tmp: Path, rows: int, runs: int, groups: dict[str, list[str]]) -> None:
    """The same queries through the trigram search this one replaced (benchmarks/trigram_search.py)."""
    start = time.perf_counter()
    old = TrigramSearch(str(tmp / "trigram.sqlite3"), synthetic_articles(rows))
    built_s, size_mb = time.perf_counter() - start, disk_bytes(tmp, "trigram") / 1e6
    print(f"\ntrigram search, {rows} rows: built in {built_s:.1f} s, {size_mb:.0f} MB")
    everything: list[float] = []
    for group, queries in groups.items():
        times = []
        for q in queries:
            for _ in range(runs):
                start = time.perf_counter()
                old.search(q, limit=10)
                times.append((time.perf_counter() - start) * 1000)
        everything += times
        print(f"  -> {group:9} median ms={statistics.median(times):8.3f}  p95 ms={p95(times):8.3f}")
    print(f"  => all queries: median ms={statistics.median(everything):.3f}  p95={p95(everything):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic rows (0 to skip)")
    parser.add_argument("--runs", type=int, default=15, help="runs per query")
    parser.add_argument("--trigram", action="store_true", help="also time the old trigram search on the same rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shipped = KnowledgeBase(Path(tmp) / "shipped.sqlite3", DEFAULT_KNOWLEDGE_DIR)
        start = time.perf_counter()
        shipped.ensure_built()
        print(f"shipped knowledge base: built in {(time.perf_counter() - start) * 1000:.1f} ms")
        bench(shipped, args.runs, QUERIES)
        if args.rows > 0:
            synthetic = KnowledgeBase(Path(tmp) / "synthetic.sqlite3")
            start = time.perf_counter()
            synthetic.build_from_records(synthetic_articles(args.rows))
            built_s, size_mb = time.perf_counter() - start, disk_bytes(Path(tmp), "synthetic") / 1e6
            per = 10_000 / args.rows
            print(f"\n{args.rows} synthetic rows: built in {built_s:.1f} s, {size_mb:.0f} MB"
                  f" ({built_s * per:.1f} s and {size_mb * per:.1f} MB per 10,000 documents)")
            groups = {**QUERIES, "rare": [*vocabulary()[:3], "量子化", "申込"]}
            bench(synthetic, args.runs, groups)
            if args.trigram:
                bench_trigram(Path(tmp), args.rows, args.runs, groups)


if __name__ == "__main__":
    main()
