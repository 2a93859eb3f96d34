"""Isolation across asyncio tasks, trio tasks, threads; inheritance; cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading

import anyio
import anyio.lowlevel
import pytest

from settings_override import Setting, SettingsRegistry, temporary_settings


@pytest.fixture
def port(registry: SettingsRegistry) -> Setting[int]:
    return registry.define("PORT", int, 80)


@pytest.mark.anyio
async def test_two_tasks_see_only_their_own_override(port: Setting[int]) -> None:
    """Runs on asyncio and on trio (through anyio): the tasks interleave inside overrides."""
    seen: dict[str, list[int]] = {"a": [], "b": []}
    a_entered, b_entered = anyio.Event(), anyio.Event()

    async def task(name: str, value: int, mine: anyio.Event, other: anyio.Event) -> None:
        async with temporary_settings({port: value}):
            mine.set()
            await other.wait()  # both overrides are active now
            for _ in range(3):
                seen[name].append(port.value())
                await anyio.lowlevel.checkpoint()
        seen[name].append(port.value())

    async with anyio.create_task_group() as tg:
        tg.start_soon(task, "a", 1, a_entered, b_entered)
        tg.start_soon(task, "b", 2, b_entered, a_entered)
    assert seen == {"a": [1, 1, 1, 80], "b": [2, 2, 2, 80]}
    assert port.value() == 80


@pytest.mark.anyio
async def test_child_tasks_inherit_the_override(port: Setting[int]) -> None:
    seen: list[int] = []

    async def child() -> None:
        seen.append(port.value())
        async with temporary_settings({port: 3}):  # a child's own override stays in the child
            seen.append(port.value())

    async with temporary_settings({port: 2}):
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
        assert port.value() == 2
    assert seen == [2, 3]
    assert port.value() == 80


def test_asyncio_tasks_created_directly(port: Setting[int]) -> None:
    async def main() -> list[int]:
        async def read() -> int:
            await asyncio.sleep(0)
            return port.value()

        async def overriding(value: int) -> int:
            with temporary_settings({port: value}):
                await asyncio.sleep(0)
                return await asyncio.create_task(read())  # inherits

        with temporary_settings({port: 7}):
            return list(await asyncio.gather(overriding(5), overriding(6), read()))

    assert asyncio.run(main()) == [5, 6, 7]
    assert port.value() == 80


@pytest.mark.anyio
async def test_restored_on_cancellation(registry: SettingsRegistry, port: Setting[int]) -> None:
    entered = anyio.Event()
    seen: list[int] = []
    calls: list[int] = []
    registry.on_change(lambda settings: calls.append(port.value()))

    async def hold() -> None:
        async with temporary_settings({port: 9}, mirror_environ=True):
            seen.append(port.value())
            entered.set()
            await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold)
            await entered.wait()
            tg.cancel_scope.cancel()
    # The child task saw its override, and the cancellation ran its exit (the callback after
    # the exit reads the default again) and restored the process-wide mirror.
    assert seen == [9]
    assert calls == [9, 80]
    assert port.name not in os.environ
    with anyio.move_on_after(0) as scope:
        async with temporary_settings({port: 10}):
            seen.append(port.value())
            await anyio.sleep(1)
    assert scope.cancelled_caught
    assert seen == [9, 10]
    assert calls == [9, 80, 10, 80]
    assert port.value() == 80


def test_two_threads_see_only_their_own_override(port: Setting[int]) -> None:
    barrier = threading.Barrier(2, timeout=10)
    seen: dict[int, list[int]] = {}

    def worker(value: int) -> None:
        with temporary_settings({port: value}):
            barrier.wait()  # both overrides are active at the same time
            seen[value] = [port.value()]
            barrier.wait()
        seen[value].append(port.value())

    with temporary_settings({port: 99}):
        threads = [threading.Thread(target=worker, args=(v,)) for v in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert port.value() == 99
    # A new thread starts with no overrides; the parent's 99 is not seen there.
    assert seen == {1: [1, 80], 2: [2, 80]}


def test_thread_started_with_a_copied_context_inherits(port: Setting[int]) -> None:
    seen: list[int] = []
    with temporary_settings({port: 4}):
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(lambda: seen.append(port.value()),))
        thread.start()
        thread.join(10)
    assert seen == [4]


@pytest.mark.anyio
async def test_worker_threads_from_anyio_inherit(port: Setting[int]) -> None:
    async with temporary_settings({port: 6}):
        assert await anyio.to_thread.run_sync(port.value) == 6


def test_exit_in_another_context_leaves_no_stale_value(port: Setting[int]) -> None:
    """An override entered in one context and left in another (as some async fixture runners
    do) is gone from the first context too."""
    override = temporary_settings({port: 5})
    override.__enter__()
    try:
        contextvars.copy_context().run(override.__exit__, None, None, None)
        assert port.value() == 80
    finally:
        override.__exit__(None, None, None)


@pytest.mark.anyio
async def test_a_task_outliving_the_override_stops_seeing_it(port: Setting[int]) -> None:
    started, ended = anyio.Event(), anyio.Event()
    seen: list[int] = []

    async def background() -> None:
        seen.append(port.value())
        started.set()
        await ended.wait()
        seen.append(port.value())

    async with anyio.create_task_group() as tg:
        with temporary_settings({port: 5}):
            tg.start_soon(background)
            await started.wait()
        ended.set()
    assert seen == [5, 80]


def test_exit_of_a_middle_override_in_another_context(
    registry: SettingsRegistry, port: Setting[int]
) -> None:
    host = registry.define("HOST", str, "h")
    outer, middle, inner = (
        temporary_settings({port: 1}),
        temporary_settings({host: "m"}),
        temporary_settings({port: 3}),
    )
    outer.__enter__()
    middle.__enter__()
    inner.__enter__()
    try:
        contextvars.copy_context().run(middle.__exit__, None, None, None)
        assert (port.value(), host.value()) == (3, "h")
        inner.__exit__(None, None, None)
        assert (port.value(), host.value()) == (1, "h")
    finally:
        for override in (inner, middle, outer):
            override.__exit__(None, None, None)
    assert (port.value(), host.value()) == (80, "h")


def test_many_threads_entering_and_leaving_at_once(port: Setting[int]) -> None:
    """Every thread always reads its own values while the others enter and leave theirs
    (overrides end by identity and a process-wide epoch, without a lock on the read path)."""
    threads_count, rounds = 4, 300
    barrier = threading.Barrier(threads_count, timeout=30)
    wrong: list[tuple[int, int, int]] = []

    def worker(number: int) -> None:
        barrier.wait()
        base = number * 1000
        for i in range(rounds):
            outer = temporary_settings({port: base + i})
            inner = temporary_settings({port: base + i + 500})
            outer.__enter__()
            inner.__enter__()
            if port.value() != base + i + 500:
                wrong.append((number, i, port.value()))
            if i % 2:
                outer.__exit__(None, None, None)  # out of order every other round
                if port.value() != base + i + 500:
                    wrong.append((number, i, port.value()))
                inner.__exit__(None, None, None)
            else:
                inner.__exit__(None, None, None)
                if port.value() != base + i:
                    wrong.append((number, i, port.value()))
                outer.__exit__(None, None, None)
            if port.value() != 80:
                wrong.append((number, i, port.value()))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, threads_count + 1)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: interleave the steps
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    assert wrong == []
