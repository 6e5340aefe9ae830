"""The simulator: routes and lifecycle."""

from __future__ import annotations

from aiohttp import web

from .events import Customers


class VKSimulator(Customers):
    """``async with VKSimulator(token, group_id) as sim:`` then point the connector's
    ``base_url`` at ``sim.base_url``; set ``sim.callback_url`` (and ``secret``) for the
    Callback API, or ``sim.mode = "longpoll"``."""

    def __init__(
        self, access_token: str, group_id: int, *, secret: str = "", confirmation_code: str = ""
    ) -> None:
        super().__init__(access_token, group_id)
        self.secret = secret
        self.confirmation_code = confirmation_code

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        self.add_routes(app)
        return app

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/method/{method}", self._method)
        app.router.add_get("/method/{method}", self._method)
        app.router.add_post("/upload/{kind:photo|doc}", self._upload)
        app.router.add_get("/files/{key}", self._file)
        app.router.add_get("/lp", self._long_poll)
