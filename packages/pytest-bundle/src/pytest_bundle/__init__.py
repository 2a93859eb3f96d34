"""The pytest plugin composing settings-override, fake-sleep and server-launcher.

Importing this package must stay cheap: pytest loads it in every session through the
``pytest11`` entry point, so it imports only the standard library and pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._factory import HostedApiServerFactory

if TYPE_CHECKING:
    from ._errors import HostedApiServerError

__version__ = "0.1.0"

__all__ = ["HostedApiServerError", "HostedApiServerFactory", "__version__"]

# Every public class names this package as its home, so reprs, tracebacks, pickles and the docs'
# inventory show the path users import (`pytest_bundle.X`), not a private module.
# (HostedApiServerError sets its own, in _errors.py, when it is first loaded.)
HostedApiServerFactory.__module__ = __name__


def __getattr__(name: str) -> object:
    """``HostedApiServerError`` imports server_launcher, so it is loaded when first named."""
    if name == "HostedApiServerError":
        from ._errors import HostedApiServerError

        return HostedApiServerError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
