"""Run a real server subprocess: ready in milliseconds, never left behind.

``launch_server(...)`` is a sync and async (asyncio or trio) context manager yielding a
``RunningServer``; see the guide for the details.
"""

from __future__ import annotations

import types

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


# Every public class and function names this package as its home, so reprs, tracebacks,
# pickles and the docs' inventory show the path users import (`server_launcher.X`), not a private
# module.
for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type | types.FunctionType):
        _public.__module__ = __name__
del _name, _public
