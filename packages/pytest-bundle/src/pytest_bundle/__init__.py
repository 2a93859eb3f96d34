"""The pytest plugin composing settings-override, fake-sleep and server-launcher.

Importing this package must stay cheap: pytest loads it in every session through the
``pytest11`` entry point, so it imports only the standard library and pytest.
"""

from __future__ import annotations

from ._factory import HostedApiServerFactory

__version__ = "0.1.0"

__all__ = ["HostedApiServerFactory", "__version__"]
