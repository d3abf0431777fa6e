"""One conversation with a realtime service, independent of the UI: state, turns, response gate, tools."""
