"""The simulator: the Graph API routes over the endpoints, and its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from .. import payloads as wa
from ..payloads import Json
from ..payloads import no_object_error as _no_object
from .config import MiB
from .media import MediaEndpoint
from .messages import MessageEndpoint

VERSION = r"{version:v\d+\.\d+}"


class WhatsAppSimulator(MessageEndpoint, MediaEndpoint):
    """``async with WhatsAppSimulator(access_token=...) as sim:`` then point the connector's
    Graph base URL at ``sim.base_url`` and its webhook settings at ``sim.app_secret`` /
    ``sim.verify_token``; tell the simulator the bridge's webhook with ``webhook_url``."""

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.document_bytes + 8 * MiB)
        self.add_routes(app)
        return app

    def add_routes(self, app: web.Application) -> None:
        """The Graph API routes, the last of them answering every other path (the demo serves
        them next to its own pages)."""
        ep = self._endpoint
        app.router.add_post(f"/{VERSION}/{{node}}/messages", ep(self._messages))
        app.router.add_post(f"/{VERSION}/{{node}}/media", ep(self._upload))
        app.router.add_get(f"/{VERSION}/{{node}}/message_templates", ep(self._list_templates))
        app.router.add_get(f"/{VERSION}/{{node}}", ep(self._get_node))
        app.router.add_delete(f"/{VERSION}/{{node}}", ep(self._delete_node))
        app.router.add_get("/whatsapp_business/attachments/", self._download)
        app.router.add_route("*", "/{tail:.*}", ep(self._unknown_path))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await super().stop()

    # -- GET /{waba-id}/message_templates ---------------------------------------------------------

    async def _list_templates(self, request: web.Request) -> Json:
        node = request.match_info["node"]
        if node != self.waba_id:
            raise _no_object(node, "get")
        return wa.templates_page(self.templates, request.query, f"{self.base_url}{request.path}")
