"""The shop's client: it finds the API through the SHOP_API_URL setting."""

from __future__ import annotations

from typing import Any

import httpx

from .settings import API_URL, CSRF_ENABLED


def _url(path: str) -> str:
    base = API_URL.value()
    if base is None:
        raise RuntimeError("SHOP_API_URL is not set")
    return base + path


def request_headers() -> dict[str, str]:
    """The client sends a CSRF token only while CSRF protection is on."""
    return {"X-CSRF-Token": "fetched-token"} if CSRF_ENABLED.value() else {}


def list_items() -> list[dict[str, Any]]:
    response = httpx.get(_url("/items"), headers=request_headers())
    response.raise_for_status()
    return list(response.json())


def server_settings() -> dict[str, Any]:
    return dict(httpx.get(_url("/settings")).json())
