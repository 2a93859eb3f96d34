"""temporary_environ: process-wide, exact restore."""

from __future__ import annotations

import os

import anyio
import anyio.lowlevel
import pytest

from settings_override import SettingValidationError, temporary_environ

ABSENT, EMPTY, PRESENT = "SOT_ENV_ABSENT", "SOT_ENV_EMPTY", "SOT_ENV_PRESENT"


@pytest.fixture
def three_states(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ABSENT, raising=False)
    monkeypatch.setenv(EMPTY, "")
    monkeypatch.setenv(PRESENT, "original")


def _state() -> tuple[str | None, str | None, str | None]:
    return os.environ.get(ABSENT), os.environ.get(EMPTY), os.environ.get(PRESENT)


@pytest.mark.usefixtures("three_states")
def test_exact_restore_of_absent_empty_and_present() -> None:
    with temporary_environ({ABSENT: "new", EMPTY: "filled", PRESENT: None}) as before:
        assert _state() == ("new", "filled", None)
        assert before == {ABSENT: None, EMPTY: "", PRESENT: "original"}
    assert _state() == (None, "", "original")
    assert ABSENT not in os.environ


@pytest.mark.usefixtures("three_states")
def test_restored_on_exception_and_after_direct_writes() -> None:
    def fail() -> None:
        with temporary_environ({PRESENT: "x", ABSENT: ""}):
            os.environ[PRESENT] = "written by the code under test"
            raise KeyError("boom")

    with pytest.raises(KeyError):
        fail()
    assert _state() == (None, "", "original")


@pytest.mark.usefixtures("three_states")
def test_out_of_order_exits() -> None:
    first, second = temporary_environ({PRESENT: "1"}), temporary_environ({PRESENT: "2"})
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert os.environ[PRESENT] == "2"
    second.__exit__(None, None, None)
    assert os.environ[PRESENT] == "original"


@pytest.mark.anyio
@pytest.mark.usefixtures("three_states")
async def test_async_context_manager() -> None:
    async with temporary_environ({ABSENT: "a"}):
        await anyio.lowlevel.checkpoint()
        assert os.environ[ABSENT] == "a"
    assert ABSENT not in os.environ


@pytest.mark.usefixtures("three_states")
def test_bad_input_changes_nothing() -> None:
    with pytest.raises(SettingValidationError) as info:
        temporary_environ({ABSENT: "ok", PRESENT: 5, "A=B": "x", EMPTY: "nul\0"})  # type: ignore[dict-item]
    assert set(info.value.problems) == {PRESENT, "'A=B'", EMPTY}
    assert _state() == (None, "", "original")
    with pytest.raises(TypeError, match="mapping"):
        temporary_environ([(ABSENT, "x")])  # type: ignore[arg-type]
