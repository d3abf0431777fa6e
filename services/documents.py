"""Reading a folder of the user's documents: Markdown, plain text and HTML, each into one Article.

A file that cannot be read as a document (binary, an unknown encoding, too large) raises UnreadableFile
with a short Japanese reason; the index logs it once and goes on with the rest.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

MARKDOWN, TEXT, HTML = {".md", ".markdown"}, {".txt", ".text"}, {".html", ".htm"}
SUFFIXES = MARKDOWN | TEXT | HTML
MAX_BYTES = 5_000_000  # a text document larger than this is a log or a dump, not something to answer from
ENCODINGS = ("utf-8-sig", "cp932")  # UTF-8 first; Shift_JIS (cp932) is still common for Japanese text files
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


class UnreadableFile(Exception):
    """A file skipped on purpose; the message says why, in Japanese."""


@dataclass(frozen=True)
class Article:
    title: str
    body: str
    tags: tuple[str, ...] = ()
    date: str = ""
    source: str = ""  # the file's path inside the folder, with "/" separators


@dataclass(frozen=True)
class FileState:
    """What a scan sees of a file; a change in either means the file is read again."""

    size: int
    mtime_ns: int


def scan(folder: Path | None) -> dict[str, FileState]:
    """Every document file under `folder` (subfolders too), by its relative path; cheap: stat() only."""
    found: dict[str, FileState] = {}
    if folder is None or not folder.is_dir():
        return found
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):  # dotfiles and dot-folders are editor/OS/VCS litter
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif (entry.is_file() and os.path.splitext(entry.name)[1].lower() in SUFFIXES
                      and not entry.name.upper().startswith("README")):  # a README describes the folder itself
                    stat = entry.stat()
                    found[Path(entry.path).relative_to(folder).as_posix()] = FileState(stat.st_size, stat.st_mtime_ns)
    return found


def split_tags(tags: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in re.split(r"[,、，]", tags.strip("[]")) if t.strip())


def decode(data: bytes) -> str:
    if b"\0" in data[:8192]:
        raise UnreadableFile("バイナリのファイルです")
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding).replace("\r\n", "\n")
        except UnicodeDecodeError:
            continue
    raise UnreadableFile("文字コードが UTF-8 でも Shift_JIS でもありません")


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    meta: dict[str, str] = {}
    if text.startswith("---\n") and (end := text.find("\n---", 3)) != -1:
        for key, sep, value in (line.partition(":") for line in text[4:end].splitlines()):
            if sep:
                meta[key.strip().lower()] = value.strip().strip("\"'")
        text = text[end + 4 :].lstrip("-")
    return meta, text


class _HTMLText(HTMLParser):
    """The visible text of a page, its <title> and its first <h1>."""

    SKIPPED = frozenset({"script", "style", "noscript", "template", "head"})
    BREAKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = self.heading = ""
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.BREAKS:
            self.parts.append("\n")
        if tag not in ("br", "meta", "link", "img", "hr", "input"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            while self._open and self._open.pop() != tag:
                pass
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if "title" in self._open and not self.title:
            self.title = data.strip()
        if self.SKIPPED.intersection(self._open):
            return
        if "h1" in self._open and not self.heading:
            self.heading = data.strip()
        self.parts.append(data)


def _html_article(text: str) -> tuple[str, str]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    body = "\n".join(line.strip() for line in "".join(parser.parts).splitlines() if line.strip())
    return parser.heading or parser.title, body


def read_article(path: Path, source: str) -> Article:
    """One file as an Article: title from front matter, the first heading (Markdown `#`, HTML <h1>/<title>),
    else the file name; the date from front matter, else the file's modification day."""
    try:
        stat = path.stat()
        if stat.st_size > MAX_BYTES:
            raise UnreadableFile(f"大きすぎます（{stat.st_size // 1_000_000} MB、上限 {MAX_BYTES // 1_000_000} MB）")
        text = decode(path.read_bytes())
    except OSError as exc:
        raise UnreadableFile(f"読めません（{exc.strerror or type(exc).__name__}）") from None
    suffix = path.suffix.lower()
    meta, title = {}, ""
    if suffix in HTML:
        title, text = _html_article(text)
    else:
        meta, text = _front_matter(text)
        heading = _HEADING.search(text) if suffix in MARKDOWN else None
        title = meta.get("title") or (heading.group(1) if heading else "")
    date = meta.get("date") or dt.date.fromtimestamp(stat.st_mtime).isoformat()
    return Article(title or path.stem, text.strip(), split_tags(meta.get("tags", "")), date, source)


def read_all(folder: Path, sources: list[str]) -> Iterator[tuple[str, Article | UnreadableFile]]:
    """Each source's article, or the reason it was skipped."""
    for source in sources:
        try:
            yield source, read_article(folder / source, source)
        except UnreadableFile as exc:
            yield source, exc
