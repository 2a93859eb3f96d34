"""Public names show the path users import, in reprs, tracebacks and pickles."""

from __future__ import annotations

import pickle
import traceback
import types

import pytest

import server_launcher
from server_launcher import ServerStartError, ServerStartTimeout


@pytest.mark.parametrize("name", sorted(server_launcher.__all__))
def test_every_public_class_and_function_lives_in_the_package(name: str) -> None:
    obj = getattr(server_launcher, name)
    if isinstance(obj, type | types.FunctionType):
        assert obj.__module__ == "server_launcher"
        assert pickle.loads(pickle.dumps(obj)) is obj


@pytest.mark.parametrize(
    "error",
    [
        ServerStartError(
            "the server exited with exit code 1 before it was ready",
            command=["python", "-m", "uvicorn"],
            returncode=1,
            output_tail=["Traceback ...", "KeyError: 'X'"],
            log_path="/tmp/x.log",
        ),
        ServerStartTimeout(
            "no answer within 1 s",
            command=["python", "-m", "uvicorn"],
            timeout=1.0,
            last_health_status=503,
        ),
    ],
    ids=["ServerStartError", "ServerStartTimeout"],
)
def test_start_errors_print_their_public_path_and_survive_pickling(
    error: ServerStartError,
) -> None:
    text = "".join(traceback.format_exception_only(error))
    assert text.startswith(f"server_launcher.{type(error).__name__}: ")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
