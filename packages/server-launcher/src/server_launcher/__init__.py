"""Run a real server subprocess: ready in milliseconds, never left behind.

``launch_server(...)`` is a sync and async (asyncio or trio) context manager yielding a
``RunningServer``; see the guide for the details.
"""

from __future__ import annotations

from ._errors import ServerStartError, ServerStartTimeout, ServerStopWarning
from ._launch import DEMO_APP, RunningServer, ServerLauncher, launch_server
from ._platform import pid_alive

__version__ = "0.1.0"

__all__ = [
    "DEMO_APP",
    "RunningServer",
    "ServerLauncher",
    "ServerStartError",
    "ServerStartTimeout",
    "ServerStopWarning",
    "__version__",
    "launch_server",
    "pid_alive",
]
