"""The examples' application settings: a registry like your application's."""

from __future__ import annotations

from settings_override import SettingsRegistry

settings = SettingsRegistry(prefix="EXAMPLE_")
API_URL = settings.define(
    "API_URL",
    str | None,
    default=None,
    description="Where the API is.",
)
CSRF_ENABLED = settings.define("CSRF_ENABLED", bool, default=True)
NEW_CHECKOUT = settings.define(
    "NEW_CHECKOUT",
    bool,
    default=False,
    description="A feature flag the server reads.",
)
