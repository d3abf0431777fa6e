"""Test support: stand-in servers, clients and app hosts shared by tests/ and benchmarks/ (no tests here)."""
