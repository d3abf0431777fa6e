"""Built-in offline engine: rule-based assistant, VAD turn detection and Japanese TTS."""
