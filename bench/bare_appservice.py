"""The reference for Matrix -> remote: the least an appservice can do to forward staff
messages. It answers each transaction after POSTing every ``m.room.message`` in it (one JSON
POST per event) to a receiver; no database, no queue, no state.

Run as its own process, like the bridge::

    python -m bench.bare_appservice --port 29400 --hs-token TOKEN --bot @bare:localhost \\
        --forward http://127.0.0.1:8000/bare
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import signal
from typing import Any

import aiohttp
from aiohttp import web


def make_app(hs_token: str, bot: str, forward_url: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    expected = f"Bearer {hs_token}".encode()

    async def session_ctx(app: web.Application) -> Any:
        app["session"] = aiohttp.ClientSession()
        yield
        await app["session"].close()

    async def transaction(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        body = await request.json()
        session: aiohttp.ClientSession = request.app["session"]
        for event in body.get("events", []):
            if event.get("type") != "m.room.message" or event.get("sender") == bot:
                continue
            payload = {
                "room_id": event.get("room_id"),
                "event_id": event.get("event_id"),
                "sender": event.get("sender"),
                "body": (event.get("content") or {}).get("body"),
            }
            async with session.post(forward_url, json=payload) as resp:
                await resp.read()
        return web.json_response({})

    async def not_found(_: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)

    app.cleanup_ctx.append(session_ctx)
    app.router.add_put("/_matrix/app/v1/transactions/{txn}", transaction)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


async def serve(port: int, hs_token: str, bot: str, forward_url: str) -> None:
    runner = web.AppRunner(make_app(hs_token, bot, forward_url), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("bare appservice ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare_appservice")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hs-token", required=True)
    p.add_argument("--bot", required=True, help="the appservice's own user (not forwarded)")
    p.add_argument("--forward", required=True, help="URL each message event is POSTed to")
    args = p.parse_args()
    asyncio.run(serve(args.port, args.hs_token, args.bot, args.forward))


if __name__ == "__main__":
    main()
