"""Wall clocks that follow the virtual time: pendulum always, time.time and datetime on request.

A followed wall clock returns the real time plus the virtual seconds jumped so far by the
`virtual_time()` block that asked for it and runs in the reading thread (the innermost, if
nested); a thread with no block of its own (a worker thread) follows the newest block of the
process. A block's shift only grows while it runs, so readings taken inside a block never go
backwards, whatever blocks in other threads do; on exit that thread reads real time again.
"""

from __future__ import annotations

import datetime as _datetime_module
import importlib.util
import threading
import time as _time_module
from collections.abc import Callable
from typing import Any

from ._driver import Driver

__all__ = ["follow_wall_clocks", "stop_following"]

_REAL_DATETIME = _datetime_module.datetime
_REAL_TIME = _time_module.time
_REAL_TIME_NS = _time_module.time_ns
_UTC = _datetime_module.timezone.utc

_lock = threading.Lock()


class _Followed:
    """One patched wall clock: a stack of drivers; the newest one's jumps shift it."""

    def __init__(self, install: Callable[[], Callable[[], None]]) -> None:
        self._install = install
        self._uninstall: Callable[[], None] | None = None
        self.drivers: list[Driver] = []
        #: The blocks of each thread that runs one, innermost last.
        self.by_thread: dict[int, list[Driver]] = {}

    def shift(self) -> float:
        own = self.by_thread.get(threading.get_ident())
        try:
            driver = own[-1] if own else self.drivers[-1]
        except IndexError:
            return 0.0
        return driver.now - driver.start

    def add(self, driver: Driver) -> None:
        if self._uninstall is None:
            self._uninstall = self._install()  # may raise: then nothing was added
        self.drivers.append(driver)
        self.by_thread.setdefault(driver.thread, []).append(driver)

    def remove(self, driver: Driver) -> None:
        if driver in self.drivers:
            self.drivers.remove(driver)
        own = self.by_thread.get(driver.thread, [])
        if driver in own:
            own.remove(driver)
            if not own:
                del self.by_thread[driver.thread]
        if not self.drivers and self._uninstall is not None:
            uninstall, self._uninstall = self._uninstall, None
            uninstall()


def _install_pendulum() -> Callable[[], None]:
    import pendulum

    library: Any = pendulum  # typed loosely: mypy confuses local_timezone with its module
    cls: Any = pendulum.DateTime
    saved = cls.__dict__["now"]

    def now(klass: Any, tz: Any = None) -> Any:
        # Built from the real datetime class, so a datetime_now patch never adds twice.
        moment = _REAL_DATETIME.now(_UTC) + _datetime_module.timedelta(seconds=_PENDULUM.shift())
        if tz is None or tz == "local":
            tz = library.local_timezone()
        return klass.instance(moment).in_timezone(tz)

    now.__doc__ = saved.__func__.__doc__
    cls.now = classmethod(now)

    def uninstall() -> None:
        cls.now = saved

    return uninstall


def _install_time() -> Callable[[], None]:
    def time() -> float:
        return _REAL_TIME() + _TIME.shift()

    def time_ns() -> int:
        return _REAL_TIME_NS() + int(_TIME.shift() * 1e9)

    _time_module.time = time
    _time_module.time_ns = time_ns

    def uninstall() -> None:
        _time_module.time = _REAL_TIME
        _time_module.time_ns = _REAL_TIME_NS

    return uninstall


class _DatetimeMeta(type):
    """Keeps ``isinstance(x, datetime.datetime)`` true for real datetimes while patched."""

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, _REAL_DATETIME)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _REAL_DATETIME)


class _FollowingDatetime(_REAL_DATETIME, metaclass=_DatetimeMeta):
    """Stands in for ``datetime.datetime``; its constructors build real datetimes."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return _REAL_DATETIME(*args, **kwargs)

    @classmethod
    def now(cls, tz: _datetime_module.tzinfo | None = None) -> Any:
        return _REAL_DATETIME.fromtimestamp(_REAL_TIME() + _DATETIME.shift(), tz)

    @classmethod
    def utcnow(cls) -> Any:
        moment = _REAL_DATETIME.fromtimestamp(_REAL_TIME() + _DATETIME.shift(), _UTC)
        return moment.replace(tzinfo=None)

    @classmethod
    def today(cls) -> Any:
        return _REAL_DATETIME.fromtimestamp(_REAL_TIME() + _DATETIME.shift())


def _install_datetime() -> Callable[[], None]:
    _datetime_module.datetime = _FollowingDatetime  # type: ignore[misc]

    def uninstall() -> None:
        _datetime_module.datetime = _REAL_DATETIME  # type: ignore[misc]

    return uninstall


_PENDULUM = _Followed(_install_pendulum)
_TIME = _Followed(_install_time)
_DATETIME = _Followed(_install_datetime)


class _Following:
    __slots__ = ("clocks", "driver")

    def __init__(self, driver: Driver, clocks: list[_Followed]) -> None:
        self.driver = driver
        self.clocks = clocks


def follow_wall_clocks(driver: Driver, *, time_time: bool, datetime_now: bool) -> object:
    """Make the requested wall clocks follow ``driver``; returns a handle for stopping."""
    clocks: list[_Followed] = []
    if importlib.util.find_spec("pendulum") is not None:
        clocks.append(_PENDULUM)
    if time_time:
        clocks.append(_TIME)
    if datetime_now:
        clocks.append(_DATETIME)
    following = _Following(driver, [])
    with _lock:
        try:
            for clock in clocks:
                clock.add(driver)
                following.clocks.append(clock)
        except BaseException:
            for clock in following.clocks:
                clock.remove(driver)
            raise
    return following


def stop_following(handle: object) -> None:
    """Undo `follow_wall_clocks` (a no-op for ``None``)."""
    if not isinstance(handle, _Following):
        return
    with _lock:
        for clock in handle.clocks:
            clock.remove(handle.driver)
