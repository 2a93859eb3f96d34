"""The recorder answers the AsyncMock API exactly like a real AsyncMock fed the same awaits."""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock, call

import anyio
import pytest

from fake_sleep import SleepRecorder, patch_sleep

Await = tuple[tuple[Any, ...], dict[str, Any]]

SCENARIOS: dict[str, list[Await]] = {
    "none": [],
    "one": [((5,), {})],
    "several": [((1,), {}), ((2,), {}), ((1,), {}), ((0.5,), {})],
    "keyword": [((), {"delay": 3}), ((3,), {})],
}

ASSERTIONS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("assert_awaited", (), {}),
    ("assert_awaited_once", (), {}),
    ("assert_not_awaited", (), {}),
    ("assert_awaited_with", (5,), {}),
    ("assert_awaited_with", (0.5,), {}),
    ("assert_awaited_with", (), {"delay": 3}),
    ("assert_awaited_with", (3,), {}),
    ("assert_awaited_once_with", (5,), {}),
    ("assert_awaited_once_with", (1,), {}),
    ("assert_any_await", (2,), {}),
    ("assert_any_await", (7,), {}),
    ("assert_any_await", (), {"delay": 3}),
    ("assert_has_awaits", ([call(1), call(2)],), {}),
    ("assert_has_awaits", ([call(2), call(1)],), {}),
    ("assert_has_awaits", ([call(2), call(1)],), {"any_order": True}),
    ("assert_has_awaits", ([call(1), call(1), call(1)],), {"any_order": True}),
    ("assert_has_awaits", ([call(delay=3), call(3)],), {}),
    ("assert_has_awaits", ([],), {}),
    ("assert_called", (), {}),
    ("assert_called_once", (), {}),
    ("assert_not_called", (), {}),
    ("assert_called_with", (5,), {}),
    ("assert_called_with", (0.5,), {}),
    ("assert_called_once_with", (5,), {}),
    ("assert_called_once_with", (9,), {}),
    ("assert_any_call", (2,), {}),
    ("assert_any_call", (8,), {}),
    ("assert_has_calls", ([call(1), call(2), call(1)],), {}),
    ("assert_has_calls", ([call(5), call(1)],), {}),
    ("assert_has_calls", ([call(0.5), call(2)],), {"any_order": True}),
]

INSPECTED = [
    "called",
    "call_count",
    "await_count",
    "call_args",
    "await_args",
    "call_args_list",
    "await_args_list",
    "mock_calls",
    "method_calls",
]


def _outcome(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    try:
        method(*args, **kwargs)
    except AssertionError as exc:
        return str(exc)
    return None


def _compare(recorder: SleepRecorder, mock: AsyncMock) -> tuple[int, int]:
    """Assert every inspection and assertion agrees; count passing and failing assertions."""
    for name in INSPECTED:
        ours, theirs = getattr(recorder, name), getattr(mock, name)
        assert ours == theirs, name
        assert repr(ours) == repr(theirs), name
        assert bool(ours) == bool(theirs), name
        assert type(ours) is type(theirs), name
    # call objects behave the same when taken apart
    for ours, theirs in zip(recorder.call_args_list, mock.call_args_list, strict=True):
        assert ours.args == theirs.args
        assert ours.kwargs == theirs.kwargs
        assert ours[0] == theirs[0]
        assert ours[1] == theirs[1]
    passed = failed = 0
    for name, args, kwargs in ASSERTIONS:
        expected = _outcome(getattr(mock, name), args, kwargs)
        assert _outcome(getattr(recorder, name), args, kwargs) == expected, (name, args)
        if expected is None:
            passed += 1
        else:
            failed += 1
    return passed, failed


@pytest.mark.anyio
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_same_results_and_messages_as_asyncmock(scenario: str) -> None:
    mock = AsyncMock()
    with patch_sleep() as recorder:
        for args, kwargs in SCENARIOS[scenario]:
            await anyio.sleep(*args, **kwargs)
            await mock(*args, **kwargs)
    passed, failed = _compare(recorder, mock)
    # The comparison exercised both sides of the API.
    assert passed > 0
    assert failed > 0


@pytest.mark.anyio
async def test_parity_holds_while_recording_continues_and_after_reset() -> None:
    mock = AsyncMock()
    with patch_sleep() as recorder:
        await anyio.sleep(1)
        await mock(1)
        _compare(recorder, mock)  # builds call objects for the first await
        await anyio.sleep(2)
        await mock(2)
        await anyio.sleep(delay=3)
        await mock(delay=3)
        _compare(recorder, mock)  # and only the new ones now
        assert recorder.call_args_list == [call(1), call(2), call(delay=3)]
        recorder.reset_mock()
        mock.reset_mock()
        _compare(recorder, mock)
        await anyio.sleep(5)
        await mock(5)
        _compare(recorder, mock)


def test_messages_name_the_mock_like_the_documented_fixture() -> None:
    recorder = SleepRecorder()
    with pytest.raises(AssertionError, match=r"^Expected mock to have been awaited\.$"):
        recorder.assert_awaited()
    with pytest.raises(AssertionError, match=r"^Expected 'mock' to have been called\.$"):
        recorder.assert_called()
