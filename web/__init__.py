"""The web layer: the Gradio page, its API, the FastRTC voice handler and the browser-session registry."""
