"""Kept servers (``hosted_api_reuse``): adopted by the next session, never stale, never orphaned.

Every pytester project has its own rootdir (so its own state under .pytest_cache); each test
stops what its sessions kept (``--hosted-api-stop-kept``), then kills any pid still alive.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from server_launcher import KeptServer

pytestmark = pytest.mark.slow

APP = """
import os
import time

VERSION = "one"
time.sleep(float(os.environ.get("MYAPP_IMPORT_DELAY", "0")))  # an app slow to import


def create_app():
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": message["type"] + ".complete"})
                if kind == "shutdown":
                    return
        answers = {
            "/api/health": "ok",
            "/api/pid": str(os.getpid()),
            "/api/version": VERSION,
            "/api/flag": os.environ.get("MYAPP_FLAG", ""),
        }
        if scope["path"] == "/api/lazy":  # a module imported on request, after ready
            import lazymod

            answers["/api/lazy"] = lazymod.ANSWER
        body = answers.get(scope["path"], "").encode()
        await send({"type": "http.response.start", "status": 200 if body else 404,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app
"""

CONFTEST = """
import http.client
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import sys

import pytest

OUT = Path(__file__).parent / "seen.txt"
HEAVY = ("server_launcher._launch", "uvicorn", "httpx", "settings_override")


def get(url, path):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", parts.path + path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def note(url, label):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with OUT.open("a") as f:
        f.write(f"{label} {worker} {get(url, '/pid')} {get(url, '/version')} "
                f"{get(url, '/flag') or '-'}\\n")


@pytest.fixture(scope="session")
def timed_server(request):
    started = time.perf_counter()
    url = request.getfixturevalue("hosted_api_server")
    with OUT.open("a") as f:
        f.write(f"setup {time.perf_counter() - started:.4f}\\n")
        f.write(f"heavy {','.join(m for m in HEAVY if m in sys.modules) or '-'}\\n")
    return url
"""

TESTS = """
import os
from pathlib import Path

import pytest
from conftest import note


def test_default(timed_server):
    note(timed_server, "default")


@pytest.mark.hosted_api_env(MYAPP_FLAG="pooled")
def test_pooled(use_hosted_api_server):
    note(use_hosted_api_server, "pooled")
"""

BLOCKING_TEST = """
import time
from pathlib import Path

from conftest import note


def test_waits_for_go(hosted_api_server):
    note(hosted_api_server, "default")
    here = Path(__file__).parent
    (here / "up.txt").write_text("up")
    deadline = time.monotonic() + 60
    while not (here / "go.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
hosted_api_app = myapp:create_app
hosted_api_reuse = true
hosted_api_reuse_idle = {idle}
hosted_api_server_env =
    {env}
"""


class Project:
    """A pytester project with the app, and what its sessions saw."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.seen_pids: set[int] = set()

    def configure(self, *, idle: float = 120, env: str = "MYAPP_FLAG=a") -> None:
        self.pytester.makefile(".ini", pytest=INI.format(idle=idle, env=env))

    def run(self, *args: str) -> pytest.RunResult:
        (self.path / "seen.txt").unlink(missing_ok=True)
        result = self.pytester.runpytest("-p", "no:randomly", *args)
        self.seen_pids |= {int(r[2]) for r in self.rows() if r[0] in ("default", "pooled")}
        return result

    def run_fresh(self, *args: str) -> pytest.RunResult:
        """A session in a process of its own: what it imports is its own (``run`` shares ours)."""
        (self.path / "seen.txt").unlink(missing_ok=True)
        result = self.pytester.runpytest_subprocess("-p", "no:randomly", *args, timeout=120)
        self.seen_pids |= {int(r[2]) for r in self.rows() if r[0] in ("default", "pooled")}
        return result

    def rows(self) -> list[list[str]]:
        seen = self.path / "seen.txt"
        return [line.split() for line in seen.read_text().splitlines()] if seen.exists() else []

    def pid(self, label: str = "default") -> int:
        return next(int(row[2]) for row in self.rows() if row[0] == label)

    def row(self, label: str = "default") -> list[str]:
        return next(row for row in self.rows() if row[0] == label)

    def setup_seconds(self) -> float:
        return next(float(row[1]) for row in self.rows() if row[0] == "setup")

    def kept_folders(self) -> list[Path]:
        root = self.path / ".pytest_cache" / "d" / "pytest-bundle-kept"
        return [f for slot in root.glob("*") if slot.is_dir() for f in slot.iterdir()]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)  # an unrelated process exiting has no event we can wait on here
    return False


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    if not Path("/proc/self/stat").exists():
        pytest.skip("finds processes through /proc (Linux)")
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(myapp=APP, conftest=CONFTEST, test_app=TESTS)
    made = Project(pytester)
    made.configure()
    yield made
    result = pytester.runpytest("--hosted-api-stop-kept")
    leftovers = [pid for pid in made.seen_pids if not _wait_gone(pid, 30)]
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert result.ret == 0
    assert not leftovers, f"kept servers still running after --hosted-api-stop-kept: {leftovers}"


def _session_until_up(project: Project) -> subprocess.Popen[bytes]:
    """A pytest process (blocking test) that holds its server until go.txt appears."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "test_block.py"],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "CI"},
    )
    deadline = time.monotonic() + 60
    while not (project.path / "up.txt").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(process.communicate()[0].decode())
        time.sleep(0.02)
    project.seen_pids.add(project.pid())
    return process


def test_second_session_adopts_the_kept_servers(project: Project) -> None:
    project.configure(env="MYAPP_FLAG=a\n    MYAPP_IMPORT_DELAY=2")
    first = project.run()
    first.assert_outcomes(passed=2)
    default, pooled, cold = project.pid(), project.pid("pooled"), project.setup_seconds()
    assert cold >= 2.0  # the app's import
    first.stdout.fnmatch_lines(["*kept servers: 0 adopted, 2 started*"])
    assert _alive(default)  # kept past the session's end
    assert _alive(pooled)

    second = project.run_fresh()
    second.assert_outcomes(passed=2)
    assert (project.pid(), project.pid("pooled")) == (default, pooled)
    # Below the 2 s import any start needs (0.5 s was a tight bound: it failed on a busy host).
    assert project.setup_seconds() < 2.0
    # Adoption reads the kept server's files: it imports neither the launcher nor the server.
    assert next(row[1] for row in project.rows() if row[0] == "heavy") == "-"
    second.stdout.fnmatch_lines(["*kept servers: 2 adopted, 0 started*"])
    assert project.row("pooled")[4] == "pooled"  # the variant's own environment


def test_a_code_change_restarts_the_kept_server(project: Project) -> None:
    project.run().assert_outcomes(passed=2)
    old = project.pid()
    app = project.path / "myapp.py"
    app.write_text(app.read_text().replace('VERSION = "one"', 'VERSION = "second"'))
    result = project.run()
    result.assert_outcomes(passed=2)
    assert project.pid() != old
    assert project.row()[3] == "second"  # the new code answers, never the old
    result.stdout.fnmatch_lines(["*hosted_api_server restarted: app code changed: myapp.py*"])
    assert _wait_gone(old, 30)


def test_a_later_import_never_hides_an_earlier_code_change(project: Project) -> None:
    """Issue 21: a kept server that imported more after its app file was edited noted the
    edited file as it was on disk then, and the next session adopted it (the old code)."""
    (project.path / "lazymod.py").write_text('ANSWER = "old"\n')
    project.run("test_app.py", "-k", "default").assert_outcomes(passed=1, deselected=1)
    old = project.pid()
    [folder] = project.kept_folders()
    app = project.path / "myapp.py"
    app.write_text(app.read_text().replace('VERSION = "one"', 'VERSION = "two"'))  # same size
    # Between the sessions the kept server imports a module (a request; any thread's import).
    url = json.loads((folder / "state.json").read_text())["url"]
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", "/api/lazy")
        assert connection.getresponse().read() == b"old"
    finally:
        connection.close()
    kept = KeptServer.load(folder)
    assert kept is not None
    deadline = time.monotonic() + 20  # noted at once now; within a tick (1 s) before the fix
    while not any("lazymod.py" in str(m) for m in kept.modules()):
        assert time.monotonic() < deadline, "the kept server never noted lazymod.py"
        time.sleep(0.02)
    result = project.run("test_app.py", "-k", "default")
    result.assert_outcomes(passed=1, deselected=1)
    assert project.row()[3] == "two"  # the new code answers, never the old
    assert project.pid() != old
    result.stdout.fnmatch_lines(["*hosted_api_server restarted: app code changed: myapp.py*"])


def test_a_kept_server_without_its_module_record_is_not_adopted(project: Project) -> None:
    project.run("test_app.py", "-k", "default").assert_outcomes(passed=1, deselected=1)
    old = project.pid()
    [folder] = project.kept_folders()
    (folder / "modules.json").unlink()  # nothing proves its code is the code on disk
    result = project.run("test_app.py", "-k", "default")
    result.assert_outcomes(passed=1, deselected=1)
    assert project.pid() != old
    result.stdout.fnmatch_lines(
        ["*hosted_api_server restarted: its list of imported modules is missing or unreadable*"]
    )


def test_an_environment_change_restarts_the_kept_server(project: Project) -> None:
    project.run().assert_outcomes(passed=2)
    old = project.pid()
    project.configure(env="MYAPP_FLAG=b")
    result = project.run()
    result.assert_outcomes(passed=2)
    assert project.pid() != old
    assert project.row()[4] == "b"
    result.stdout.fnmatch_lines(["*hosted_api_server restarted: environment changed: MYAPP_FLAG"])
    assert "MYAPP_FLAG=" not in result.stdout.str().split("restarted")[1].splitlines()[0]


def test_stop_kept_stops_them_all_before_collection(project: Project) -> None:
    project.run().assert_outcomes(passed=2)
    pids = [project.pid(), project.pid("pooled")]
    result = project.pytester.runpytest("--hosted-api-stop-kept")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["pytest-bundle: stopped 2 kept hosted API servers of *"])
    assert "collected" not in result.stdout.str()
    assert all(_wait_gone(pid, 30) for pid in pids)
    assert project.kept_folders() == []


def test_a_kept_server_expires_after_its_idle_time(project: Project) -> None:
    project.configure(idle=1)
    project.run().assert_outcomes(passed=2)
    pid = project.pid()
    assert _wait_gone(pid, 60)  # no pytest process came back: the server's own watchdog
    project.run().assert_outcomes(passed=2)
    assert project.pid() != pid


def test_a_held_kept_server_never_expires(project: Project) -> None:
    project.configure(idle=0.5)
    project.pytester.makepyfile(test_block=BLOCKING_TEST)
    blocker = _session_until_up(project)
    try:
        pid = project.pid()
        # Long past its idle time, while the session holds it, it still serves.
        blocker_deadline = time.monotonic() + 3
        while time.monotonic() < blocker_deadline:
            assert _alive(pid)
            time.sleep(0.1)
        # --hosted-api-stop-kept leaves a held server alone, naming the session holding it.
        result = project.pytester.runpytest("--hosted-api-stop-kept")
        result.stdout.fnmatch_lines(
            [f"*stopped 0 kept*; left 1 running, held by a running session (pid {blocker.pid})"]
        )
        assert _alive(pid)
    finally:
        (project.path / "go.txt").write_text("go")
        output = blocker.communicate(timeout=60)[0].decode()
        assert blocker.returncode == 0, output


def test_a_concurrent_session_never_adopts_a_held_server(project: Project) -> None:
    project.pytester.makepyfile(test_block=BLOCKING_TEST)
    blocker = _session_until_up(project)
    try:
        held = project.pid()
        project.run("test_app.py").assert_outcomes(passed=2)
        assert project.pid() != held  # it started its own
    finally:
        (project.path / "go.txt").write_text("go")
        output = blocker.communicate(timeout=60)[0].decode()
        assert blocker.returncode == 0, output
    result = project.pytester.runpytest("--hosted-api-stop-kept")
    result.stdout.fnmatch_lines(["pytest-bundle: stopped 3 kept hosted API servers*"])


def test_a_sigkilled_session_leaves_an_adoptable_server(project: Project) -> None:
    project.pytester.makepyfile(test_block=BLOCKING_TEST)
    blocker = _session_until_up(project)
    held = project.pid()
    blocker.send_signal(signal.SIGKILL)
    blocker.communicate(timeout=60)
    assert _alive(held)
    project.run("test_app.py").assert_outcomes(passed=2)
    assert project.pid() == held


def test_reuse_is_off_under_ci_unless_always(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["pytest-bundle: hosted_api_reuse is off under CI*"])
    assert _wait_gone(project.pid(), 10)  # stopped at the session's end, as without reuse
    assert project.kept_folders() == []

    result = project.run("--hosted-api-reuse=always")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*kept servers: 0 adopted, 2 started*"])
    assert _alive(project.pid())


def test_each_xdist_worker_adopts_its_own(project: Project) -> None:
    pytest.importorskip("xdist")

    def pids_by_worker() -> dict[str, int]:
        return {row[1]: int(row[2]) for row in project.rows() if row[0] == "default"}

    project.run("-n", "2", "--dist", "each").assert_outcomes(passed=4)
    first = pids_by_worker()
    assert set(first) == {"gw0", "gw1"}
    assert first["gw0"] != first["gw1"]
    result = project.run("-n", "2", "--dist", "each")
    result.assert_outcomes(passed=4)
    assert pids_by_worker() == first
    result.stdout.fnmatch_lines(["*kept servers: 2 adopted, 0 started*"])


def test_shared_xdist_workers_adopt_one_kept_server_per_environment(project: Project) -> None:
    pytest.importorskip("xdist")

    def pids() -> dict[tuple[str, str], int]:
        return {(r[0], r[1]): int(r[2]) for r in project.rows() if r[0] in ("default", "pooled")}

    args = ("-n", "2", "--dist", "each", "--hosted-api-shared")
    first = project.run(*args)
    first.assert_outcomes(passed=4)
    first.stdout.fnmatch_lines(["*kept servers: 0 adopted, 2 started*"])
    assert "does not apply" not in first.stdout.str()
    seen = pids()
    assert {worker for _, worker in seen} == {"gw0", "gw1"}
    default, pooled = seen["default", "gw0"], seen["pooled", "gw0"]
    assert seen == {("default", "gw0"): default, ("default", "gw1"): default,
                    ("pooled", "gw0"): pooled, ("pooled", "gw1"): pooled}  # fmt: skip
    assert default != pooled
    assert _alive(default)  # kept past the session's end
    assert _alive(pooled)

    second = project.run(*args)
    second.assert_outcomes(passed=4)
    assert pids() == seen  # both workers use the kept server of each environment
    second.stdout.fnmatch_lines(["*kept servers: 2 adopted, 0 started*"])


def test_a_bad_reuse_value_is_a_usage_error(project: Project) -> None:
    result = project.pytester.runpytest("--hosted-api-reuse", "test_app.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected false, true or always, got 'test_app.py'*"])
    result = project.pytester.runpytest("--hosted-api-reuse-idle=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*hosted_api_reuse_idle*positive, finite*"])


def test_state_is_private_to_the_user(project: Project) -> None:
    project.run().assert_outcomes(passed=2)
    folders = project.kept_folders()
    assert len(folders) == 2
    for folder in [folders[0].parent.parent, *folders]:
        assert folder.stat().st_mode & 0o077 == 0
    for file in folders[0].iterdir():
        assert file.stat().st_mode & 0o077 == 0, file
    key = (folders[0] / "key.json").read_text()
    assert "MYAPP_FLAG" in key
    assert '"a"' not in key  # names, never values


def test_a_module_imported_on_request_is_part_of_the_fingerprint(project: Project) -> None:
    (project.path / "lazymod.py").write_text('ANSWER = "old"\n')
    project.pytester.makepyfile(
        test_lazy="""
        from conftest import get, note


        def test_lazy(hosted_api_server):
            note(hosted_api_server, "default")
            with open("lazy.txt", "w") as f:
                f.write(get(hosted_api_server, "/lazy"))
        """
    )
    project.run("test_lazy.py").assert_outcomes(passed=1)
    assert (project.path / "lazy.txt").read_text() == "old"
    old = project.pid()
    # The server noted the file before the module ran, so before it answered the request.
    [folder] = project.kept_folders()
    assert "lazymod.py" not in (folder / "modules.json").read_text()  # imported after ready
    assert "lazymod.py" in (folder / "modules.more").read_text()
    (project.path / "lazymod.py").write_text('ANSWER = "new!"\n')
    result = project.run("test_lazy.py")
    result.assert_outcomes(passed=1)
    assert (project.path / "lazy.txt").read_text() == "new!"
    assert project.pid() != old
    result.stdout.fnmatch_lines(["*restarted: app code changed: lazymod.py*"])


def test_hosted_api_on_reuse_resets_an_adopted_server(project: Project) -> None:
    (project.path / "conftest.py").write_text(
        (project.path / "conftest.py").read_text()
        + """

@pytest.fixture(scope="session")
def hosted_api_on_reuse():
    def reset(url):
        with OUT.open("a") as f:
            f.write(f"reset {url}\\n")
    return reset
"""
    )
    project.run("test_app.py", "-k", "default").assert_outcomes(passed=1, deselected=1)
    assert not [row for row in project.rows() if row[0] == "reset"]  # a new server
    first = project.pid()
    project.run("test_app.py", "-k", "default").assert_outcomes(passed=1, deselected=1)
    resets = [row for row in project.rows() if row[0] == "reset"]
    assert project.pid() == first
    assert len(resets) == 1
    assert resets[0][1].endswith("/api")  # the API URL, before any test used it


def test_an_app_that_cannot_start_is_reported_and_nothing_is_kept(project: Project) -> None:
    project.configure(env="MYAPP_FLAG=a\n    BROKEN=1")
    app = project.path / "myapp.py"
    broken = "\nif os.environ.get('BROKEN'):\n    raise SystemExit('no db')\n"
    app.write_text(app.read_text() + broken)
    result = project.run("test_app.py", "-k", "default", "--show-capture=no")  # tail inline
    result.assert_outcomes(errors=1, deselected=1)
    result.stdout.fnmatch_lines(["*hosted_api_server could not start*", "*no db*"])
    assert project.kept_folders() == []


def test_a_server_stopped_to_stay_within_the_pool_size_is_not_kept(project: Project) -> None:
    # The pooled test first: its server is evicted when it ends (the last test's is kept).
    order = ["test_app.py::test_pooled", "test_app.py::test_default"]
    project.run("--hosted-api-pool-size=1", *order).assert_outcomes(passed=2)
    assert _wait_gone(project.pid("pooled"), 30)  # evicted mid-session: stopped, not kept
    assert _alive(project.pid())  # the default server, held to the end: kept
    assert len(project.kept_folders()) == 1
