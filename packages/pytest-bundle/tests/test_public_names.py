"""Public names show the path users import, in reprs, tracebacks, pickles and reports."""

from __future__ import annotations

import pickle
import types

import pytest

import pytest_bundle


@pytest.mark.parametrize("name", sorted(pytest_bundle.__all__))
def test_every_public_class_and_function_lives_in_the_package(name: str) -> None:
    obj = getattr(pytest_bundle, name)
    if isinstance(obj, type | types.FunctionType):
        assert obj.__module__ == "pytest_bundle"
        assert pickle.loads(pickle.dumps(obj)) is obj


@pytest.mark.slow  # a pytest session in a subprocess
def test_a_start_failure_is_reported_under_its_public_name(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # the short summary line shows the whole type name
    pytester.makeini(
        """
        [pytest]
        hosted_api_app = server_launcher.demo:create_app_that_is_missing
        hosted_api_startup_timeout = 60
        """
    )
    pytester.makepyfile(
        """
        def test_a(hosted_api_server):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-rE", timeout=120)
    result.assert_outcomes(errors=1)
    summary = result.stdout.str()
    # A fixture reports the failure the pytest way (an error at set-up), never a private path.
    assert "Failed: hosted_api_server could not start" in summary
    assert "pytest_bundle._" not in summary
