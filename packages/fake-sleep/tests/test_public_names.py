"""Public names show the path users import, in reprs, tracebacks and pickles."""

from __future__ import annotations

import pickle
import traceback
import types

import pytest

import fake_sleep
from fake_sleep import UnknownTargetError, patch_sleep


@pytest.mark.parametrize("name", sorted(fake_sleep.__all__))
def test_every_public_class_and_function_lives_in_the_package(name: str) -> None:
    obj = getattr(fake_sleep, name)
    if isinstance(obj, type | types.FunctionType):
        assert obj.__module__ == "fake_sleep"
        assert pickle.loads(pickle.dumps(obj)) is obj


def test_an_unknown_target_prints_its_public_path_and_survives_pickling() -> None:
    with pytest.raises(UnknownTargetError) as caught, patch_sleep(targets=["anyio.sleeep"]):
        pass
    text = "".join(traceback.format_exception_only(caught.value))
    assert text.startswith("fake_sleep.UnknownTargetError: ")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is UnknownTargetError
    assert str(copy) == str(caught.value)
    assert (copy.path, copy.found, copy.missing) == ("anyio.sleeep", "anyio", "sleeep")
    assert copy.owner is None  # the module it stopped at does not pickle


def test_the_recorder_repr_names_the_package() -> None:
    with patch_sleep(clocks=()) as sleep:
        assert type(sleep).__module__ == "fake_sleep"
        assert "fake_sleep._" not in repr(sleep)
