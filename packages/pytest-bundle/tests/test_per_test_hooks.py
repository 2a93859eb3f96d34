"""What the per-test savings must not change (issue 18, item 11).

The plugin registers its per-test hooks only when a test's fixture closure can reach a server
or the virtual clock, or when such a fixture is first asked for dynamically; and
``use_hosted_api_server`` reads the default server's URL from the pool unless
``hosted_api_server`` is redefined. These sessions take the paths the shortcuts skip.
"""

from __future__ import annotations

import re

import pytest


def _summary(result: pytest.RunResult) -> tuple[int, int]:
    """(servers started, servers stopped early) from the plugin's summary line."""
    text = result.stdout.str()
    started = re.search(r"pytest-bundle: (\d+) hosted API servers? started", text)
    early = re.search(r"; (\d+) stopped early to stay within hosted_api_pool_size", text)
    assert started is not None, text
    return int(started.group(1)), int(early.group(1)) if early else 0


def test_a_factory_asked_for_dynamically_is_held_by_its_test_only(
    pytester: pytest.Pytester,
) -> None:
    # No test names a fixture of ours: the per-test hooks are registered when the first
    # dynamic request sets up the pool, and that test still holds its server only until its
    # teardown, so the second environment evicts the first (pool size 1).
    pytester.makeini("[pytest]\nhosted_api_pool_size = 1\n")
    pytester.makepyfile(
        test_dynamic="""
import urllib.request


def _get(url):
    with urllib.request.urlopen(url + "/health", timeout=30) as response:
        return response.status


def test_first(request):
    factory = request.getfixturevalue("hosted_api_server_factory")
    assert _get(factory({"DYNAMIC_FLAG": "one"})) == 200


def test_second(request):
    factory = request.getfixturevalue("hosted_api_server_factory")
    assert _get(factory({"DYNAMIC_FLAG": "two"})) == 200
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert _summary(result) == (2, 1)


def test_use_hosted_api_server_follows_a_redefined_hosted_api_server(
    pytester: pytest.Pytester,
) -> None:
    # In a module that redefines hosted_api_server the redefinition still runs for every test
    # (use_hosted_api_server asks pytest for it there); its URL is the running server's, as
    # before. A module that does not redefine it reads the URL from the pool.
    pytester.makepyfile(
        test_redefined="""
import pytest

CALLS = []


@pytest.fixture
def hosted_api_server(hosted_api_server):
    CALLS.append(hosted_api_server)
    return hosted_api_server


@pytest.mark.parametrize("n", range(3))
def test_use(use_hosted_api_server, n):
    assert len(CALLS) == n + 1
    assert CALLS[-1] == use_hosted_api_server
""",
        test_plain="""
import os

import pytest


@pytest.mark.parametrize("n", range(3))
def test_use(use_hosted_api_server, n):
    assert use_hosted_api_server.endswith("/api")
    assert os.environ["API_URL"] == use_hosted_api_server
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    assert _summary(result) == (1, 0)
