"""Shared set-up for the plugin's pytester sessions."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(autouse=True)
def _quiet_pytest_asyncio(request: pytest.FixtureRequest) -> None:
    """Inner sessions set pytest-asyncio's loop scope, so they do not warn that it is unset.

    pytester removes PYTEST_ADDOPTS when it is created, so this sets it afterwards; without
    pytest-asyncio installed the option would be unknown, so it is left alone.
    """
    if "pytester" not in request.fixturenames or not importlib.util.find_spec("pytest_asyncio"):
        return
    request.getfixturevalue("pytester")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
