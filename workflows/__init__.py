"""Temporal workflows: deterministic, driven by each case's pinned arrangements version (see registry.py)."""
