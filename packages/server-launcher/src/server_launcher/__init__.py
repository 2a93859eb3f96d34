"""Run a real server subprocess: ready in milliseconds, never left behind."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
