"""The Realtime protocol edge: the SDK connection and the two wire dialects."""
