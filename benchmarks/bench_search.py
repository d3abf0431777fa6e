"""Median search latency over the shipped knowledge base and a large synthetic corpus.

Usage: python benchmarks/bench_search.py [--rows 100000] [--runs 15]

Two figures per query: `query_ms` is the SQL time the KnowledgeBase reports itself, `call_ms` is the
wall time of the whole `search()` call (including the per-call freshness check of the source folder).
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

from services.knowledge import ARTICLES_DIR, Article, KnowledgeBase

QUERIES = {
    "1-2 chars": ["AI", "統計", "音声", "ai"],
    "3+ chars": ["機械学習", "音声認識", "ニューラルネットワーク", "transformer"],
    "mixed": ["音声 合成", "AI 倫理", "機械学習 評価"],
}
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


def synthetic_articles(rows: int, seed: int = 42) -> Iterator[Article]:
    """Japanese-ish rows: real topic words mixed with random katakana words for a varied index."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(KANA, k=rng.randint(3, 6))) for _ in range(5000)]

    def noun() -> str:
        return rng.choice(TOPICS) if rng.random() < 0.3 else rng.choice(words)

    for i in range(rows):
        sentences = [f"{noun()}を使って{noun()}の{noun()}を{rng.choice(VERBS)}。" for _ in range(rng.randint(4, 7))]
        tags = tuple(rng.sample(TOPICS, 2))
        yield Article(f"{noun()}と{noun()}の{noun()}", "".join(sentences), tags, "2024-01-01", f"synthetic/{i}")


def bench(kb: KnowledgeBase, runs: int) -> None:
    kb.search("ウォームアップ")  # builds if needed and warms the page cache
    for group, queries in QUERIES.items():
        group_query, group_call = [], []
        for q in queries:
            query_ms, call_ms, total = [], [], 0
            for _ in range(runs):
                start = time.perf_counter()
                result = kb.search(q, limit=5)
                call_ms.append((time.perf_counter() - start) * 1000)
                query_ms.append(result.query_ms)
                total = result.total
            group_query += query_ms
            group_call += call_ms
            print(
                f"  {q!r:28} total={total:>6}  query_ms={statistics.median(query_ms):8.3f}"
                f"  call_ms={statistics.median(call_ms):8.3f}"
            )
        print(
            f"  -> {group:9} median query_ms={statistics.median(group_query):8.3f}"
            f"  call_ms={statistics.median(group_call):8.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic rows (0 to skip)")
    parser.add_argument("--runs", type=int, default=15, help="runs per query")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shipped = KnowledgeBase(Path(tmp) / "shipped.sqlite3", ARTICLES_DIR)
        start = time.perf_counter()
        shipped.ensure_built()
        print(f"shipped knowledge base: built in {(time.perf_counter() - start) * 1000:.1f} ms")
        bench(shipped, args.runs)
        if args.rows > 0:
            synthetic = KnowledgeBase(Path(tmp) / "synthetic.sqlite3")
            start = time.perf_counter()
            synthetic.build_from_records(synthetic_articles(args.rows))
            built_s, size_mb = time.perf_counter() - start, synthetic.db_path.stat().st_size / 1e6
            print(f"\n{args.rows} synthetic rows: built in {built_s:.1f} s, {size_mb:.0f} MB")
            bench(synthetic, args.runs)


if __name__ == "__main__":
    main()
