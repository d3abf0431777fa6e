"""Relevance of the knowledge-base search over a labelled set of Japanese queries: hit@3 and MRR (top 10),
the Sudachi + bm25 search against the trigram search it replaced.

Usage: python benchmarks/bench_relevance.py [--verbose]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere

from benchmarks.relevance_corpus import DOCUMENTS, QUERIES
from benchmarks.trigram_search import TrigramSearch
from services.documents import read_article
from services.knowledge import KnowledgeBase


def score(name: str, search: callable, verbose: bool) -> tuple[float, float]:
    """hit@3 and MRR of `search(query) -> ranked sources`; prints the queries it misses."""
    hits, reciprocal = 0, 0.0
    for query, relevant, kind in QUERIES:
        ranked = search(query)[:10]
        rank = next((i for i, source in enumerate(ranked, 1) if source in relevant), None)
        hits += rank is not None and rank <= 3
        reciprocal += 1 / rank if rank else 0.0
        if verbose or rank is None or rank > 3:
            print(f"  {name:8} {query!r:22} rank={rank or '-':>2}  ({kind})  top: {ranked[:3]}")
    return hits / len(QUERIES), reciprocal / len(QUERIES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print every query, not only the misses")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        for source, text in DOCUMENTS.items():
            (folder / source).parent.mkdir(parents=True, exist_ok=True)
            (folder / source).write_text(text + "\n", "utf-8")
        kb = KnowledgeBase(Path(tmp) / "new.sqlite3", folder)
        kb.sync()
        old = TrigramSearch(str(Path(tmp) / "old.sqlite3"), (read_article(folder / s, s) for s in DOCUMENTS))
        print(f"{len(QUERIES)} labelled queries over {len(DOCUMENTS)} documents")
        results = {
            "sudachi": score("sudachi", lambda q: [h.source for h in kb.search(q, limit=10).hits], args.verbose),
            "trigram": score("trigram", lambda q: old.search(q, limit=10), args.verbose),
        }
    for name, (hit3, mrr) in results.items():
        print(f"{name:8} hit@3={hit3:.3f}  MRR={mrr:.3f}")


if __name__ == "__main__":
    main()
