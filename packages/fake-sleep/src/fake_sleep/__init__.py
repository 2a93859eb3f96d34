"""Instant sleeps with exact assertions, and a virtual event-loop clock."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
