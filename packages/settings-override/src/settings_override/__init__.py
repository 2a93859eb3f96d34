"""Typed, context-local settings overrides that a subprocess can inherit.

Define settings in a `SettingsRegistry`, read them with `setting.value()`, override them for one
test, task or thread with `temporary_settings`, and hand the current values to a child process
with `get_current_settings().subprocess_env()`.
"""

from __future__ import annotations

import types

from ._environ import TemporaryEnviron, temporary_environ
from ._errors import DuplicateSettingError, SettingValidationError, UnknownSettingError
from ._override import TemporarySettings, temporary_settings
from ._registry import Setting, SettingsRegistry, is_registered, lookup, open_registries
from ._snapshot import SettingsSnapshot, Source, get_current_settings

__version__ = "0.1.0"

__all__ = [
    "DuplicateSettingError",
    "Setting",
    "SettingValidationError",
    "SettingsRegistry",
    "SettingsSnapshot",
    "Source",
    "TemporaryEnviron",
    "TemporarySettings",
    "UnknownSettingError",
    "__version__",
    "get_current_settings",
    "is_registered",
    "lookup",
    "open_registries",
    "temporary_environ",
    "temporary_settings",
]


# Every public class and function names this package as its home, so reprs, tracebacks,
# pickles and the docs' inventory show the path users import (`settings_override.X`), not a private
# module.
for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type | types.FunctionType):
        _public.__module__ = __name__
del _name, _public
