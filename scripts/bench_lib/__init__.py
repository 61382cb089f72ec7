"""Helpers for scripts/bench (broker side-by-side benchmark)."""
