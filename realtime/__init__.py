"""The Realtime protocol (connection, dialects) and the conversation session built on it."""
