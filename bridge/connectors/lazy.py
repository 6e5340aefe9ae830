"""A module imported when it is first used, for a connector whose library is slow to import
(aiogram takes seconds: it builds hundreds of pydantic models). The bridge starts serving
without it; the connector imports it in a worker thread when it starts, or at first use.

Import it as ``name = LazyModule(...)`` at run time and as the real module for type checkers::

    if TYPE_CHECKING:
        from . import bot
    else:
        bot = LazyModule(f"{__package__}.bot")

and ``await preload(bot)`` when the connector starts.
"""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name``: the first attribute read imports it. Safe from any
    thread (a second importer waits for the first, as ``import`` does)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


async def preload(module: ModuleType | LazyModule) -> None:
    """Import a lazy module in a worker thread: the event loop goes on serving meanwhile."""
    if isinstance(module, LazyModule):
        await asyncio.to_thread(importlib.import_module, module._name)
