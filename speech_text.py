"""Text that speech recognition returns: shared by the app's transcript and the offline engine's assistants.

A top-level module so that offline/ need not import conversation/ for it (nor the other way round).
"""

from __future__ import annotations

import re
import unicodedata

# Whisper-family models "hear" these on silence or noise; never show them as something the user said.
_HALLUCINATIONS = (
    "ご視聴ありがとうございました",
    "ご視聴ありがとうございます",
    "チャンネル登録よろしくお願いします",
    "チャンネル登録お願いします",
    "最後までご視聴いただきありがとうございます",
    "thankyouforwatching",
    "thanksforwatching",
)
_PUNCTUATION = re.compile(r"[\s、。,.!?！？「」『』…・ー〜~]+")


def is_hallucination(text: str) -> bool:
    """Whether a transcript is empty or only a phrase the model hears on silence (so nobody said it)."""
    normalized = _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text)).lower()
    return not normalized or any(normalized == h.lower() or (h in normalized and len(normalized) <= len(h) + 4)
                                 for h in _HALLUCINATIONS)
