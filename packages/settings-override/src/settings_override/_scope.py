"""One base for objects that are a sync and async context manager and a decorator."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Scoped"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Scoped(Generic[T]):
    """A sync and async context manager, and a decorator that enters a fresh copy per call.

    Subclasses validate everything in `__init__` (so bad input fails before any change) and
    implement `_fresh`, `_enter` and `_exit`. One object can be entered once at a time; a
    decorated function gets a new, independent override on every call, so concurrent calls
    (threads, tasks) never share one.
    """

    # Slots, so that subclasses may use them too (the overrides do: their hot path is faster).
    __slots__ = ("_active",)

    _active: bool

    def _fresh(self) -> Scoped[T]:
        raise NotImplementedError

    def _enter(self) -> T:
        raise NotImplementedError

    def _exit(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> T:
        if getattr(self, "_active", False):
            raise RuntimeError(
                f"{type(self).__name__} is already entered; create a new one for each nested "
                "or concurrent use (as a decorator it makes a fresh one per call)"
            )
        value = self._enter()
        self._active = True
        return value

    def __exit__(self, *exc_info: object) -> None:
        if getattr(self, "_active", False):
            self._active = False
            self._exit()

    async def __aenter__(self) -> T:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    def __call__(self, func: F) -> F:
        """Decorate a sync, async, generator or async generator function (e.g. a fixture)."""
        import inspect  # only when decorating: keeps `import settings_override` light

        if not callable(func) or isinstance(func, type):
            raise TypeError(f"can only decorate functions, got {func!r}")
        fresh = self._fresh
        wrapper: Callable[..., Any]

        if inspect.isasyncgenfunction(func):

            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
                with fresh():
                    agen = func(*args, **kwargs)
                    try:
                        item = await agen.__anext__()
                    except StopAsyncIteration:
                        return
                    while True:
                        try:
                            sent = yield item
                        except GeneratorExit:
                            await agen.aclose()
                            raise
                        except BaseException as exc:
                            try:
                                item = await agen.athrow(exc)
                            except StopAsyncIteration:
                                return
                        else:
                            try:
                                item = await agen.asend(sent)
                            except StopAsyncIteration:
                                return

            wrapper = agen_wrapper
        elif inspect.isgeneratorfunction(func):

            def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
                with fresh():
                    return (yield from func(*args, **kwargs))

            wrapper = gen_wrapper
        elif inspect.iscoroutinefunction(func):

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with fresh():
                    return await func(*args, **kwargs)

            wrapper = async_wrapper
        else:

            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                with fresh():
                    return func(*args, **kwargs)

            wrapper = sync_wrapper
        return functools.wraps(func)(wrapper)  # type: ignore[return-value]
