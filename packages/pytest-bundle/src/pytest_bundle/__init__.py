"""The pytest plugin composing settings-override, fake-sleep and server-launcher.

Importing this package must stay cheap: pytest loads it in every session through the
``pytest11`` entry point, so it imports only the standard library and pytest.
"""

from __future__ import annotations

import types

from ._factory import HostedApiServerFactory
from ._hosted import ServerStartFailed

__version__ = "0.1.0"

__all__ = ["HostedApiServerFactory", "ServerStartFailed", "__version__"]


# Every public class and function names this package as its home, so reprs, tracebacks,
# pickles and the docs' inventory show the path users import (`pytest_bundle.X`), not a private
# module.
for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type | types.FunctionType):
        _public.__module__ = __name__
del _name, _public
