"""What the page looks like to a user, read in the browser: English left on it, chat bubbles, cut headers, toasts."""

from __future__ import annotations

from typing import Any

# Words the page may show in Latin letters: product, format and protocol names, and the input key.
ALLOWED_ENGLISH = ["Gradio", "Azure", "OpenAI", "Enter", "WebRTC", "FastRTC", "Realtime", "Open-Meteo", "Markdown",
                   "JSON", "Whisper"]

# Every rendered string in Latin letters that is not allowed: text, title, aria-label, alt, placeholder.
# Not scanned: what was said in the chat and the call's tool name and arguments in the table (data, not the
# page's words), code (environment variable names), and upper-case abbreviations (AI, API).
ENGLISH_ON_PAGE = """
(allowed) => {
  const allowedWords = new Set(allowed);
  const english = (text) => (text.match(/[A-Za-z][A-Za-z'’.-]*[a-z][A-Za-z'’-]*/g) || [])
    .filter(word => !allowedWords.has(word.replace(/[.'’-]+$/, '')));
  const rendered = (el) => (el.closest('svg') || el).getClientRects().length > 0
    && getComputedStyle(el).visibility !== 'hidden';
  const isData = (el) => {
    if (el.closest('[data-testid="user"], [data-testid="bot"], code, pre')) return true;
    const cell = el.closest('#tools td');
    return !!cell && (cell.cellIndex === 1 || cell.cellIndex === 2);
  };
  const found = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!el || ['SCRIPT', 'STYLE', 'NOSCRIPT'].includes(el.tagName.toUpperCase()) || !rendered(el) || isData(el)) {
      continue;
    }
    for (const word of english(walker.currentNode.data)) found.add(`text "${walker.currentNode.data.trim()}"`);
  }
  for (const el of document.body.querySelectorAll('[title], [aria-label], [alt], [placeholder]')) {
    if (!rendered(el)) continue;
    for (const name of ['title', 'aria-label', 'alt', 'placeholder']) {
      let value = el.getAttribute(name) || '';
      if (name === 'aria-label' && isData(el)) value = value.split(':')[0];  // the message itself is data
      if (english(value).length) found.add(`${name} "${value}" on <${el.tagName.toLowerCase()}>`);
    }
  }
  return [...found].sort();
}
"""

# The chat's bubbles in page order, each as [role, [texts of the messages it holds]].
CHAT_BUBBLES = """
() => [...document.querySelectorAll('#chat .message-row')]
        .map(row => [row.classList.contains('user-row') ? 'user' : 'assistant',
                     [...row.querySelectorAll('[data-testid="user"], [data-testid="bot"]')]
                       .map(e => e.innerText.trim())])
"""

# Tool-table headers whose text does not fit their cell (cut, or drawn past its edge).
CUT_HEADERS = """
() => [...document.querySelectorAll('#tools table:not([aria-hidden="true"]) th')]
        .filter(th => th.getClientRects().length && th.innerText.trim())
        .filter(th => {
          const range = document.createRange();
          range.selectNodeContents(th);
          const text = range.getBoundingClientRect(), cell = th.getBoundingClientRect();
          return th.innerText.includes('…') || th.scrollWidth > th.clientWidth
            || text.left < cell.left - 1 || text.right > cell.right + 1;
        })
        .map(th => th.innerText.trim())
"""


def english_on_page(page: Any) -> list[str]:
    """What the page shows in English right now (product names aside); empty when all is Japanese."""
    return page.evaluate(ENGLISH_ON_PAGE, ALLOWED_ENGLISH)


def chat_bubbles(page: Any) -> list[tuple[str, list[str]]]:
    return [(role, texts) for role, texts in page.evaluate(CHAT_BUBBLES)]


def cut_headers(page: Any) -> list[str]:
    return page.evaluate(CUT_HEADERS)


def toasts(page: Any) -> list[str]:
    """The texts of the toasts on screen (title and message)."""
    return [t.strip() for t in page.locator('[data-testid="toast-body"]').all_inner_texts()]
