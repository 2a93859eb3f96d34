"""The server's output: complete at every read, kept where asked, and bounded on disk."""

from __future__ import annotations

import http.client
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server_launcher import ServerStopWarning, launch_server


def test_every_line_printed_before_an_answer_is_in_output_on_a_busy_machine(
    testapp: Callable[..., Any], cpu_burners: list[int]
) -> None:
    """The app prints a line, then answers: right after each answer, the line is in output().

    With two busy-loop processes taking both cores the reader thread lags behind the server;
    ``output()`` must still take what is pending in the pipe before it returns.
    """
    missing = []
    with testapp(startup_timeout=60) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            for number in range(300):
                conn.request("GET", f"/say?line-{number}")
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                if f"said line-{number}\n" not in server.output():
                    missing.append(number)
        finally:
            conn.close()
    assert missing == [], f"{len(missing)} of 300 lines were missing right after their answer"


def test_output_after_the_stop_has_everything_in_order(testapp: Callable[..., Any]) -> None:
    with testapp() as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            for number in range(50):
                conn.request("GET", f"/say?order-{number}")
                conn.getresponse().read()
        finally:
            conn.close()
    lines = [line for line in server.output().splitlines() if line.startswith("said order-")]
    assert lines == [f"said order-{number}" for number in range(50)]


def test_log_goes_to_the_given_folder_and_is_removed_after_a_clean_stop(
    testapp: Callable[..., Any], tmp_path: Path
) -> None:
    with testapp(log_dir=tmp_path) as server:
        log_path = server.log_path
        assert log_path is not None
        assert Path(log_path).parent == tmp_path
        shown = server.output()  # takes in what is pending, so the log has it too
        assert "Application startup complete" in shown
        assert Path(log_path).read_text().startswith(shown)
    assert server.returncode in (0, -signal.SIGTERM)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_start_keeps_its_log_in_the_given_folder(tmp_path: Path) -> None:
    from server_launcher import ServerStartError

    with pytest.raises(ServerStartError) as caught:
        with launch_server("no_such_package_xyz:create_app", log_dir=tmp_path):
            pytest.fail("must not start")
    kept = caught.value.log_path
    assert kept is not None
    assert Path(kept).parent == tmp_path
    assert "no_such_package_xyz" in Path(kept).read_text()


@pytest.mark.parametrize(
    ("log_dir", "error", "match"),
    [
        (42, TypeError, "folder path"),
        ("/no/such/folder/here", ValueError, "existing folder"),
    ],
)
def test_bad_log_dir_is_refused_before_anything_starts(
    log_dir: object, error: type[Exception], match: str, resources: Callable[[], dict[str, int]]
) -> None:
    before = resources()
    with pytest.raises(error, match=match):
        launch_server(log_dir=log_dir)  # type: ignore[arg-type]
    assert resources() == before


def test_a_kept_log_is_capped_and_ends_with_the_last_output(
    testapp: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server_launcher import _output

    monkeypatch.setattr(_output, "LOG_LIMIT", 256 * 1024)
    monkeypatch.setattr(_output, "MEMORY_LIMIT", 64 * 1024)
    with testapp(log_dir=tmp_path) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            for _ in range(20):  # 2 MB, far past the cap
                conn.request("GET", "/print?n=100000")
                conn.getresponse().read()
            conn.request("GET", "/say?the-last-line")
            conn.getresponse().read()
        finally:
            conn.close()
        os.kill(server.pid, signal.SIGKILL)  # an unclean end: the log is kept
        assert server.wait(timeout=30) == -signal.SIGKILL
        with pytest.warns(ServerStopWarning, match="exited on its own"):
            server.stop()
    kept = server.log_path
    assert kept is not None
    data = Path(kept).read_bytes()
    assert len(data) <= 256 * 1024 + 64 * 1024 + 65536 + 200  # head + memory (+ one chunk)
    assert b"Started server process" in data[:4096]  # the head is kept
    assert b"bytes left out: the log keeps the first 262144 bytes" in data
    assert b"said the-last-line" in data[-4096:]


_FULL_DISK = """
import json, resource, signal, sys
from server_launcher import ServerStartError, launch_server

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (40, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    with launch_server("no_such_package_xyz:create_app", log_dir=sys.argv[1]):
        pass
except ServerStartError as error:
    print(json.dumps({"message": str(error), "log": error.log_path, "why": error.log_incomplete}))
"""


def test_a_kept_log_cut_by_a_write_error_says_so_in_the_error(tmp_path: Path) -> None:
    """A log that could not be written completely (a full disk; here a file size limit, which
    fails a write past 40 bytes with EFBIG) is named as incomplete, with why and where."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout)
    assert found["why"] == "incomplete: File too large after 40 bytes"
    assert f"full output kept in: {found['log']} ({found['why']})" in found["message"]
    assert Path(found["log"]).stat().st_size == 40
    assert 'Could not import module "no_such_package_xyz"' in found["message"]  # the whole tail
