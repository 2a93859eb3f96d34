"""The application's settings, read from SHOP_* environment variables."""

from __future__ import annotations

from settings_override import SettingsRegistry

registry = SettingsRegistry(prefix="SHOP_")
DATABASE_PATH = registry.define("DATABASE_PATH", str, default="shop.db")
API_URL = registry.define("API_URL", str | None, default=None)
CSRF_ENABLED = registry.define("CSRF_ENABLED", bool, default=True)
