// Runs once when the page loads (demo.load(js=…)): adds the page's CSS, and puts Japanese in place of the English
// that fastrtc and Gradio draw (text, title, aria-label, alt, placeholder), now and whenever they redraw.
// __PAGE_TEXT__, __PAGE_PREFIXES__ and __PAGE_CSS__ are filled in by web/labels.py.
() => {
  const style = document.createElement("style");
  style.textContent = __PAGE_CSS__;
  document.head.appendChild(style);

  const TEXT = __PAGE_TEXT__;
  const PREFIXES = Object.entries(__PAGE_PREFIXES__);
  const ATTRIBUTES = ["title", "aria-label", "alt", "placeholder"];
  const SKIP = new Set(["SCRIPT", "STYLE", "TEXTAREA", "INPUT"]);

  const whole = (value) => {
    const key = value.trim();
    return Object.hasOwn(TEXT, key) ? value.replace(key, TEXT[key]) : value;
  };
  const attribute = (value) => {
    for (const [english, japanese] of PREFIXES) {
      if (value.startsWith(english)) return japanese + value.slice(english.length);
    }
    return whole(value);
  };
  const fixText = (node) => {
    if (node.parentElement && SKIP.has(node.parentElement.tagName)) return;
    const fixed = whole(node.data);
    if (fixed !== node.data) node.data = fixed;
  };
  const fixElement = (element) => {
    for (const name of ATTRIBUTES) {
      const value = element.getAttribute(name);
      if (!value) continue;
      const fixed = attribute(value);
      if (fixed !== value) element.setAttribute(name, fixed);
    }
  };
  const fixTree = (root) => {
    if (root.nodeType === Node.TEXT_NODE) return fixText(root);
    if (root.nodeType !== Node.ELEMENT_NODE) return;
    fixElement(root);
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      if (node.nodeType === Node.TEXT_NODE) fixText(node); else fixElement(node);
    }
  };

  new MutationObserver((records) => {
    for (const record of records) {
      if (record.type === "characterData") fixText(record.target);
      else if (record.type === "attributes") fixElement(record.target);
      else record.addedNodes.forEach(fixTree);
    }
  }).observe(document.documentElement, {
    subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ATTRIBUTES,
  });
  fixTree(document.documentElement);
}
