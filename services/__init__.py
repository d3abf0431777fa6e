"""Services behind the built-in tools: the Open-Meteo forecast and the knowledge-base search."""
