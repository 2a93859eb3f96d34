"""@pytest.mark.virtual_clock, the virtual_clock_io_grace option, and the io_grace hint.

Real pytest sessions through pytester, on every installed anyio backend; the io_grace tests
talk to a real server in a child process that answers after a second of real time.
"""

from __future__ import annotations

import importlib.util

import pytest

pytest_plugins = ["pytester"]

BACKENDS = ["asyncio", "trio"] if importlib.util.find_spec("trio") else ["asyncio"]

BOTH_BACKENDS = f"""
import pytest

@pytest.fixture(params={BACKENDS!r})
def anyio_backend(request):
    return request.param
"""

HOUR_LONG_TESTS = """
import time

import anyio
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_clock]


async def test_an_hour_passes_at_once():
    started = time.monotonic()
    before = anyio.current_time()
    await anyio.sleep(3600)
    assert anyio.current_time() - before == pytest.approx(3600)
    assert time.monotonic() - started < 60


class TestInAClass:
    async def test_timeout_fires_in_virtual_time(self, virtual_clock):
        with anyio.move_on_after(600) as scope:
            await anyio.sleep(3600)
        assert scope.cancelled_caught
        assert virtual_clock.time() == pytest.approx(600)


def test_sync_tests_are_left_alone(request):
    assert "virtual_clock" not in request.fixturenames
    started = time.monotonic()
    time.sleep(0.01)
    assert time.monotonic() - started >= 0.01
"""


def test_marker_on_a_module_runs_every_async_test_in_virtual_time(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(test_hours=HOUR_LONG_TESTS)
    result = pytester.runpytest("-p", "no:randomly", "--timeout=120")
    # Without the marker the first test sleeps an hour and meets the timeout.
    result.assert_outcomes(passed=2 * len(BACKENDS) + 1)


def test_marker_on_a_class_and_the_closest_marker_wins_per_option(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(
        test_class="""
        import anyio
        import pytest

        from fake_sleep import VirtualTimeLimitExceeded

        @pytest.mark.anyio
        @pytest.mark.virtual_clock(end=100, io_grace=5)
        class TestLimited:
            async def test_passes_within_end(self):
                await anyio.sleep(90)

            async def test_past_end_fails(self):
                await anyio.sleep(150)

            @pytest.mark.virtual_clock(end=1000)  # end from here, io_grace from the class
            async def test_own_end(self):
                await anyio.sleep(900)

            @pytest.mark.virtual_clock(end=None, io_grace=None)  # sets nothing: end=100 holds
            async def test_past_end_under_none_fails(self):
                await anyio.sleep(150)

        @pytest.mark.anyio
        async def test_outside_the_class_is_real_time(request):
            assert "virtual_clock" not in request.fixturenames
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--timeout=120", "-rf")
    result.assert_outcomes(passed=3 * len(BACKENDS), failed=2 * len(BACKENDS))
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert len(failed) == 2 * len(BACKENDS), result.outlines
    assert all("test_past_end" in line for line in failed), failed
    # end=100 from the class's marker; test_own_end passed with its own end=1000.
    limit = "VirtualTimeLimitExceeded: virtual_time(end=100)"
    assert result.stdout.str().count(limit) >= 2 * len(BACKENDS)


def test_a_marked_test_that_also_asks_for_mock_anyio_sleep_is_refused(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.virtual_clock

        @pytest.mark.anyio
        async def test_both(mock_anyio_sleep):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=len(BACKENDS))
    result.stdout.fnmatch_lines(["*uses both mock_anyio_sleep and virtual_clock; use one of them*"])


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (
            "virtual_clock(5)",
            "test_bad.py::test_it: @pytest.mark.virtual_clock: takes keyword arguments only, got"
            " (5,); write @pytest.mark.virtual_clock(io_grace=5, end=3600).",
        ),
        (
            "virtual_clock(grace=5)",
            "test_bad.py::test_it: @pytest.mark.virtual_clock: unknown option grace=; did you mean"
            " io_grace=? It takes io_grace=, end= and max_jumps= only.",
        ),
        (
            "virtual_clock(io_grace='5')",
            "test_bad.py::test_it: @pytest.mark.virtual_clock: io_grace='5' is str; write"
            " io_grace= as a number of real seconds >= 0 that outside I/O may hold the clock"
            " (math.inf: always wait).",
        ),
        ("virtual_clock(io_grace=-1)", "io_grace=-1 is out of range"),
        ("virtual_clock(io_grace=True)", "io_grace=True is bool"),
        ("virtual_clock(end=0)", "end=0 is out of range; write end= as a number of virtual"),
        ("virtual_clock(end=float('nan'))", "end=nan is out of range"),
        ("virtual_clock(max_jumps=0)", "max_jumps=0 is out of range; write it as a whole number"),
        ("virtual_clock(max_jumps=2.5)", "max_jumps=2.5 is out of range"),
        ("virtual_clock(max_jumps='9')", "max_jumps='9' is str"),
    ],
)
def test_bad_marker_arguments_stop_the_session_at_collection(
    pytester: pytest.Pytester, marker: str, expected: str
) -> None:
    pytester.makepyfile(
        test_bad=f"""
        import pytest

        ran = []

        @pytest.mark.anyio
        @pytest.mark.{marker}
        async def test_it():
            ran.append(1)

        def test_other():
            ran.append(2)
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if expected in line]
    assert len(errors) == 1, result.errlines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes()  # nothing ran


@pytest.mark.slow  # xdist workers
def test_a_bad_module_marker_is_reported_once_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_bad="""
        import pytest

        pytestmark = pytest.mark.virtual_clock(io_grace="long")

        @pytest.mark.anyio
        async def test_a():
            pass

        @pytest.mark.anyio
        async def test_b():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-n", "2", timeout=300)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "test_bad.py: @pytest.mark.virtual_clock: io_grace='long' is str" in text
    assert " passed" not in text


# --- the io_grace option and marker reach the clock: a real server that answers after 1 s ---

SLOW_SERVER = """
import socket
import sys
import time

with socket.create_server(("127.0.0.1", 0)) as server:
    print(server.getsockname()[1], flush=True)
    connection, _ = server.accept()
    with connection:
        connection.recv(16)
        time.sleep(1.0)
        connection.sendall(b"late")
        connection.recv(16)
"""

SLOW_ANSWER_TEST = f"""
import subprocess
import sys

import anyio
import pytest

SERVER = {SLOW_SERVER!r}


@pytest.fixture
def slow_server():
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


MARK


@pytest.mark.anyio
async def test_waits_for_the_answer(slow_server, virtual_clock):
    async with await anyio.connect_tcp("127.0.0.1", slow_server) as stream:
        await stream.send(b"ask")
        with anyio.fail_after(30):
            assert await stream.receive() == b"late"
"""


@pytest.mark.parametrize(
    ("mark", "ini", "args", "passes"),
    [
        ("pytestmark = pytest.mark.virtual_clock(io_grace=0.05)", "", [], False),
        ("", "virtual_clock_io_grace = 0.05", [], False),
        ("", "virtual_clock_io_grace = 0.05", ["--virtual-clock-io-grace=30"], True),
        (
            "pytestmark = pytest.mark.virtual_clock(io_grace=30)",
            "virtual_clock_io_grace = 0.05",
            [],
            True,
        ),
        ("", "", ["--virtual-clock-io-grace=inf"], True),
    ],
)
def test_io_grace_from_the_marker_the_ini_and_the_command_line_reaches_the_clock(
    pytester: pytest.Pytester, mark: str, ini: str, args: list[str], passes: bool
) -> None:
    """A grace shorter than the server's answer makes fail_after(30) fire at once; a longer one
    waits for it. (fake-sleep's default is left out: its margin over 1 s is not for busy CI.)"""
    pytester.makeconftest(BOTH_BACKENDS)
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_slow=SLOW_ANSWER_TEST.replace("MARK", mark))
    result = pytester.runpytest("-p", "no:randomly", "--timeout=120", *args)
    if passes:
        result.assert_outcomes(passed=len(BACKENDS))
    else:
        result.assert_outcomes(failed=len(BACKENDS))
        result.stdout.fnmatch_lines(["*TimeoutError*"])
        # fake-sleep's own note on the timeout brings the bundle's section to each report.
        source = "@pytest.mark.virtual_clock" if mark else "the virtual_clock_io_grace option"
        text = result.stdout.str()
        assert text.count("virtual_clock: io_grace ran out") == len(BACKENDS), text
        assert text.count(f"This test's io_grace: 0.05 s, from {source}.") == len(BACKENDS)


# A livelock of one-second sleeps: it must fail after exactly the configured number of jumps.
LIVELOCK_TEST = """
import anyio
import pytest

MARK
@pytest.mark.anyio
async def test_livelock(virtual_clock):
    try:
        while True:
            await anyio.sleep(1)
    finally:
        print(f"reached {virtual_clock.time():g} virtual seconds")
"""


@pytest.mark.parametrize(
    ("mark", "ini", "args", "jumps"),
    [
        ("@pytest.mark.virtual_clock(max_jumps=30)", "virtual_clock_max_jumps = 500", [], 30),
        ("", "virtual_clock_max_jumps = 40", [], 40),
        ("", "virtual_clock_max_jumps = 500", ["--virtual-clock-max-jumps=50"], 50),
    ],
    ids=["marker", "ini", "command-line"],
)
def test_max_jumps_from_the_marker_the_ini_and_the_command_line_reaches_the_clock(
    pytester: pytest.Pytester, mark: str, ini: str, args: list[str], jumps: int
) -> None:
    """The closest setting wins (marker over command line over ini); the failure names how to
    raise it under the bundle."""
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_loop=LIVELOCK_TEST.replace("MARK", mark))
    result = pytester.runpytest("-p", "no:randomly", "--timeout=120", "-s", *args)
    result.assert_outcomes(failed=len(BACKENDS))
    text = result.stdout.str()
    assert text.count(f"reached {jumps} virtual seconds") == len(BACKENDS), text
    assert f"{jumps} jumps reached max_jumps={jumps}" in text
    assert "max_jumps= (virtual_clock_max_jumps)" in text


@pytest.mark.parametrize("value", ["0", "2.5", "many", "-inf"])
def test_a_bad_max_jumps_is_one_usage_error_at_start(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    expected = (
        "virtual_clock_max_jumps (ini) / --virtual-clock-max-jumps (command line): expected a"
        " whole number of jumps >= 1, such as 5000000 (inf: no limit; empty: fake-sleep's"
        f" default, a million), got '{value}'."
    )
    for args, ini in (([f"--virtual-clock-max-jumps={value}"], ""), ([], value)):
        if ini:
            pytester.makeini(f"[pytest]\nvirtual_clock_max_jumps = {ini}\n")
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        errors = [line for line in result.errlines if expected in line]
        assert len(errors) == 1, result.errlines
        assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "soon",
            "virtual_clock_io_grace (ini) / --virtual-clock-io-grace (command line): expected"
            " a number of real seconds >= 0, such as 10 (inf: always wait for outside I/O; empty:"
            " fake-sleep's default), got 'soon'.",
        ),
        ("-1", "got '-1'"),
        ("nan", "got 'nan'"),
    ],
)
def test_a_bad_io_grace_is_one_usage_error_at_start(
    pytester: pytest.Pytester, value: str, expected: str
) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    for args, ini in (([f"--virtual-clock-io-grace={value}"], ""), ([], value)):
        if ini:
            pytester.makeini(f"[pytest]\nvirtual_clock_io_grace = {ini}\n")
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        errors = [line for line in result.errlines if expected in line]
        assert len(errors) == 1, result.errlines
        assert "Traceback" not in result.stdout.str() + result.stderr.str()


# --- the hint in the report ---------------------------------------------------------------------

# An exception as fake-sleep's virtual clock leaves it when a timeout fired after the grace ran
# out: the note starts with fake_sleep.GRACE_NOTE_PREFIX, or at least names io_grace=.
NOTED_FAILURE = """
import sys

import anyio
import pytest

from fake_sleep import GRACE_NOTE_PREFIX


def noted(error, note):
    if sys.version_info >= (3, 11):
        error.add_note(note)
    else:
        error.__notes__ = [*getattr(error, "__notes__", []), note]
    return error


MARK


@pytest.mark.anyio
async def test_prefix(virtual_clock):
    raise noted(TimeoutError(), GRACE_NOTE_PREFIX + " after 2 s waiting for a socket")


@pytest.mark.anyio
async def test_other_wording(virtual_clock):
    raise noted(TimeoutError(), "the clock jumped after io_grace=2 s for 127.0.0.1:8000")


@pytest.mark.anyio
async def test_in_a_group_under_a_cause(virtual_clock):
    inner = noted(TimeoutError(), GRACE_NOTE_PREFIX + " (2 s)")
    try:
        raise ExceptionGroup("tasks", [inner]) if sys.version_info >= (3, 11) else inner
    except BaseException as group:
        raise RuntimeError("the client gave up") from group


@pytest.mark.anyio
async def test_no_note(virtual_clock):
    raise TimeoutError("a plain timeout")


@pytest.mark.anyio
async def test_note_without_virtual_clock():
    raise noted(TimeoutError(), GRACE_NOTE_PREFIX)
"""


@pytest.mark.parametrize(
    ("mark", "ini", "args", "source"),
    [
        ("", "", [], "This test's io_grace: fake-sleep's default (no option set)."),
        (
            "",
            "virtual_clock_io_grace = 3",
            [],
            "This test's io_grace: 3 s, from the virtual_clock_io_grace option",
        ),
        (
            "",
            "virtual_clock_io_grace = 3",
            ["--virtual-clock-io-grace=4"],
            "This test's io_grace: 4 s, from the virtual_clock_io_grace option",
        ),
        (
            "pytestmark = pytest.mark.virtual_clock(io_grace=2.5)",
            "virtual_clock_io_grace = 3",
            [],
            "This test's io_grace: 2.5 s, from @pytest.mark.virtual_clock.",
        ),
        (  # a long grace already: the hint suggests twice as long, never less than it has
            "",
            "",
            ["--virtual-clock-io-grace=20.5"],
            "This test's io_grace: 20.5 s, from the virtual_clock_io_grace option",
        ),
    ],
)
def test_a_failure_with_the_grace_note_names_the_ways_to_raise_it(
    pytester: pytest.Pytester, mark: str, ini: str, args: list[str], source: str
) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_noted=NOTED_FAILURE.replace("MARK", mark))
    result = pytester.runpytest("-p", "no:randomly", *args)
    result.assert_outcomes(failed=5 * len(BACKENDS))
    text = result.stdout.str()
    hinted = [part for part in text.split("_____ ") if "virtual_clock: io_grace ran out" in part]
    names = sorted(part.split(" ", 1)[0] for part in hinted)
    expected = ["test_in_a_group_under_a_cause", "test_other_wording", "test_prefix"]
    if mark:  # the module's marker gives the last test the fixture too
        expected.append("test_note_without_virtual_clock")
    assert names == sorted(f"{name}[{backend}]" for name in expected for backend in BACKENDS)
    longer = 41 if "20.5" in source else 30
    for part in hinted:
        assert source in part
        assert f"@pytest.mark.virtual_clock(io_grace={longer})" in part
        assert f"virtual_clock_io_grace = {longer} in the ini file" in part
        assert f"--virtual-clock-io-grace={longer}" in part


@pytest.mark.slow  # xdist workers
def test_the_hint_reaches_the_controller_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(test_noted=NOTED_FAILURE.replace("MARK", ""))
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-n", "2", timeout=300)
    result.assert_outcomes(failed=5 * len(BACKENDS))
    assert result.stdout.str().count("virtual_clock: io_grace ran out") == 3 * len(BACKENDS)


def test_marker_under_pytest_asyncio(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_asyncio")
    pytester.makepyfile(
        """
        import asyncio
        import time

        import pytest

        pytestmark = [pytest.mark.asyncio, pytest.mark.virtual_clock(end=7200)]

        async def test_wait_for_times_out_in_virtual_time():
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.sleep(3600 * 3), timeout=3600)
            assert time.monotonic() - started < 60
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:anyio", "--timeout=120")
    result.assert_outcomes(passed=1)
