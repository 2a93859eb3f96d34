"""Run a real server subprocess: ready in milliseconds, never left behind.

``launch_server(...)`` is a sync and async (asyncio or trio) context manager yielding a
``RunningServer``; see the guide for the details.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._errors import ServerStartError, ServerStartTimeout, ServerStopWarning
    from ._keep import KeptHold, KeptServer, hold_kept, start_kept_server
    from ._launch import DEMO_APP, RunningServer, ServerLauncher, launch_server
    from ._platform import pid_alive

__version__ = "0.1.0"

__all__ = [
    "DEMO_APP",
    "KeptHold",
    "KeptServer",
    "RunningServer",
    "ServerLauncher",
    "ServerStartError",
    "ServerStartTimeout",
    "ServerStopWarning",
    "__version__",
    "hold_kept",
    "launch_server",
    "pid_alive",
    "start_kept_server",
]


# Each name is imported on first use (PEP 562): a caller that only reads a kept server's files
# (``KeptServer``, ``hold_kept``) must not pay for the launcher's modules, which pytest-bundle's
# adoption of a kept server would otherwise spend most of its time importing.
_HOMES = {
    "ServerStartError": "_errors",
    "ServerStartTimeout": "_errors",
    "ServerStopWarning": "_errors",
    "KeptHold": "_keep",
    "KeptServer": "_keep",
    "hold_kept": "_keep",
    "start_kept_server": "_keep",
    "DEMO_APP": "_launch",
    "RunningServer": "_launch",
    "ServerLauncher": "_launch",
    "launch_server": "_launch",
    "pid_alive": "_platform",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(f"{__name__}.{home}")
    # Every public class and function names this package as its home, so reprs, tracebacks,
    # pickles and the docs' inventory show the path users import (`server_launcher.X`), not a
    # private module: each one whose module is loaded by now (``_launch`` loads ``_errors``).
    for public_name, public_home in _HOMES.items():
        module = sys.modules.get(f"{__name__}.{public_home}")
        if module is not None and public_name not in globals():
            public = getattr(module, public_name)
            if isinstance(public, type | types.FunctionType):
                public.__module__ = __name__
            globals()[public_name] = public
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
