"""Japanese analysis for search: SudachiPy normalised forms, the same for documents and queries.

Sudachi's `normalized_form()` maps orthographic variants and inflections to one form (申込/申込み → 申し込み,
附属 → 付属, 走った → 走る). Each text gives two token streams: split mode C (long units: かつ丼 → カツ丼) and
split mode A (short units: 付属品 → 付属 品). A query phrase matches either stream, so variants meet whichever
way a word is compounded. Particles, auxiliaries, symbols and spaces are dropped from both sides, so
「申込の方法」 and 「申し込み方法」 are the same phrase; so are light verbs and adjectives (する, できる, ない).
"""

from __future__ import annotations

import importlib.metadata
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from sudachipy import Dictionary, SplitMode, Tokenizer

DROPPED_POS = frozenset({"助詞", "助動詞", "補助記号", "空白"})
# する・いる・ある・なる・できる, ない・よい: in almost every document, so they only blur a search.
LIGHT_WORDS = frozenset({("動詞", "非自立可能"), ("形容詞", "非自立可能")})
MAX_CHUNK_CHARS = 4000  # Sudachi refuses inputs over 49,149 bytes; 4000 chars is at most 16 KB of UTF-8
MAX_QUERY_PHRASES = 16  # bounds the size of the generated match expression
LOCATE_CHARS = 2000  # how much of a document a snippet may analyse when no spelling of the query is in it
_WORD_SPLIT = re.compile(r"[\s、。，．,!?！？「」『』（）()\[\]{}【】・:：;；]+")
_QUERY_NOISE = re.compile(r"[\"'`*^]")  # search-syntax habits (機械"学習, 機械学習*): not word breaks
_KANA = re.compile(r"[\u3040-\u30ff]+")
_SENTENCE_END = re.compile(r"(?<=[。\n！？!?])")


def analyser_version() -> str:
    """Part of the index's fingerprint: another Sudachi or dictionary release may cut words differently."""
    return f"sudachipy {importlib.metadata.version('sudachipy')}, {importlib.metadata.version('sudachidict-core')}"


def fold(text: str) -> str:
    """NFKC and lower case: full-width ＡＩ → ai, half-width kana → full width, Python → python."""
    return unicodedata.normalize("NFKC", text).lower()


class Word(NamedTuple):
    token: str  # the folded normalised form
    surface: str
    dictionary_form: str
    begin: int
    end: int


@dataclass(frozen=True)
class Phrase:
    """One run of content words in a query: its short-unit and long-unit token sequences."""

    short: tuple[str, ...]
    long: tuple[str, ...]
    forms: tuple[str, ...]  # spellings of the whole phrase to look for in a document's text, for the snippet
    parts: tuple[str, ...]  # spellings of its words, tried when no whole spelling is there


def _chunks(text: str) -> Iterator[str]:
    """Pieces under Sudachi's input limit, cut at sentence ends where there are some."""
    piece = ""
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > MAX_CHUNK_CHARS:  # one huge "sentence" (a minified line): cut anywhere
            yield piece + sentence[: MAX_CHUNK_CHARS - len(piece)]
            sentence, piece = sentence[MAX_CHUNK_CHARS - len(piece):], ""
        if len(piece) + len(sentence) > MAX_CHUNK_CHARS:
            yield piece
            piece = ""
        piece += sentence
    if piece:
        yield piece


def _spellings(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(f for f in dict.fromkeys(fold(t) for t in texts) if f)


class Analyser:
    """Thread-safe: Sudachi tokenizers may not be shared between threads, so each thread gets its own."""

    def __init__(self) -> None:
        self._dictionary = Dictionary(dict="core")
        self._dropped = self._dictionary.pos_matcher(
            lambda pos: pos[0] in DROPPED_POS or pos[:2] in LIGHT_WORDS)
        self._local = threading.local()

    def _tokenizer(self) -> Tokenizer:
        if (tokenizer := getattr(self._local, "tokenizer", None)) is None:
            tokenizer = self._local.tokenizer = self._dictionary.tokenizer(SplitMode.C)
        return tokenizer

    def _runs(self, text: str, mode: SplitMode = SplitMode.C) -> Iterator[list[Word]]:
        """Runs of kept morphemes (no particle, symbol or space between them), offsets into `text`.

        Morphemes are copied out at once: a Sudachi morpheme is not valid after its tokenizer's next call.
        """
        tokenizer, offset = self._tokenizer(), 0
        for piece in _chunks(text):
            run: list[Word] = []
            for m in tokenizer.tokenize(piece, mode):
                if self._dropped(m):
                    if run:
                        yield run
                    run = []
                else:
                    run.append(Word(fold(m.normalized_form()), m.surface(), m.dictionary_form(),
                                    offset + m.begin(), offset + m.end()))
            if run:
                yield run
            offset += len(piece)

    def index_text(self, text: str) -> tuple[str, str]:
        """The short-unit and long-unit token streams of a document, space-joined for the term index's fields."""
        short = " ".join(w.token for run in self._runs(text, SplitMode.A) for w in run)
        return short, " ".join(w.token for run in self._runs(text) for w in run)

    def phrases(self, query: str) -> list[Phrase]:
        """The query's phrases: its words, cut again wherever a particle or symbol stood."""
        phrases: dict[tuple[str, ...], Phrase] = {}
        for word in _WORD_SPLIT.split(_QUERY_NOISE.sub("", query)):
            for run in self._runs(word):
                text = word[run[0].begin : run[-1].end]
                long = tuple(w.token for w in run)
                short = tuple(w.token for r in self._runs(text, SplitMode.A) for w in r)
                forms = _spellings([text, "".join(long), "".join(short)])
                # A lone kana (the し of 存在し) would anchor the snippet on any verb: real words only.
                parts = _spellings(f for w in run for f in (w.surface, w.dictionary_form))
                parts = tuple(f for f in parts if len(f) > 1 and f not in forms)
                stems = _spellings(_stem(w.surface, w.dictionary_form) for w in run)
                parts += tuple(f for f in stems if not _KANA.fullmatch(f))
                phrases.setdefault(long, Phrase(short, long, forms, parts))
        return list(phrases.values())[:MAX_QUERY_PHRASES]

    def locate(self, text: str, phrases: list[Phrase], title: str = "") -> tuple[int, int] | None:
        """Where a phrase occurs in a document's own text (start, length), for the snippet; None if only in its title.

        A plain find of the query's spellings first (NFKC and lower case on both sides); when the document writes
        the word in yet another way, the first morpheme whose normalised form is a query token.
        """
        folded = _fold_same_length(text)
        for spellings in ([f for p in phrases for f in p.forms], [f for p in phrases for f in p.parts]):
            found = [(i, len(f)) for f in spellings if (i := folded.find(f)) >= 0]
            if found:
                return min(found, key=lambda hit: (hit[0], -hit[1]))
        heading = fold(title)
        if any(f in heading for p in phrases for f in (*p.forms, *p.parts)):
            return None  # a title or tag match: no need to analyse the body for it
        wanted = {t for p in phrases for t in (*p.short, *p.long)}
        for mode in (SplitMode.C, SplitMode.A):
            for run in self._runs(text[:LOCATE_CHARS], mode):  # bounded: a snippet is not worth analysing a book
                if word := next((w for w in run if w.token in wanted), None):
                    return word.begin, word.end - word.begin
        return None


def _fold_same_length(text: str) -> str:
    """`fold` character by character where it would change the length (ｶﾞ → ガ), so offsets stay the text's."""
    folded = fold(text)
    if len(folded) == len(text):
        return folded
    return "".join(f if len(f := fold(c)) == 1 else c for c in text)


def _stem(surface: str, dictionary_form: str) -> str:
    """What an inflected word shares with its dictionary form (走っ/走る → 走), to find 走ります as well."""
    common = 0
    while common < min(len(surface), len(dictionary_form)) and surface[common] == dictionary_form[common]:
        common += 1
    return surface[:common] if common < len(dictionary_form) else ""


_shared: Analyser | None = None
_shared_lock = threading.Lock()


def analyser() -> Analyser:
    """The process's one analyser (loading the dictionary takes ~0.15 s and maps ~70 MB)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Analyser()
        return _shared
