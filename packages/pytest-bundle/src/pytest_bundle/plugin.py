"""pytest hooks and fixtures only; all heavy imports happen inside the fixtures."""

from __future__ import annotations
