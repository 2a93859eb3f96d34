"""A background job that waits and stamps the time, as real services do."""

from __future__ import annotations

import anyio
import pendulum


async def stamp_after(seconds: float) -> pendulum.DateTime:
    await anyio.sleep(seconds)
    return pendulum.now("UTC")
