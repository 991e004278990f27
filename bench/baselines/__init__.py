"""Minimal apps the real one is measured against (see docs/performance.md)."""
