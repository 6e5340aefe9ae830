"""Who may call the provisioning API: the config section (a short secret refused, null: off),
the shared secret (compared in constant time, acting for the ``user_id`` it names), a Matrix
OpenID token checked with a local stand-in homeserver (a ``sub`` of another server, or of
another user, refused; a valid one accepted and cached, the cache bounded), and the answers
to missing or wrong credentials (401) and to users without permission (403)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from mautrix.util.async_db import Database

from bridge.config import parse
from bridge.connector import ConfigError
from bridge.provisioning import auth
from tests.db.support import database, databases
from tests.infra.ports import free_port
from tests.provisioning.support import ADMIN, ANN, OUTSIDER, SECRET, ApiServer, config, serve
from tests.test_config import example

__all__ = ["database", "databases"]

ACCOUNTS = len(example()["channels"])
"""Every channel account of the example config: an admin or staff member sees them all."""


def test_the_config_section() -> None:
    assert parse(example()).provisioning is None  # shared_secret: null: off
    parsed = config(prefix="/api/v2/", openid_cache=5).provisioning
    assert parsed is not None
    assert (parsed.prefix, parsed.shared_secret, parsed.openid_cache) == ("/api/v2", SECRET, 5)
    for key, value in [
        ("shared_secret", "x" * 31),
        ("shared_secret", 12345),
        ("shared_secret", "generate"),
        ("prefix", "api"),
        ("prefix", "/a b"),
        ("openid_cache", -1),
        ("nonsense", 1),
    ]:
        section = {"shared_secret": SECRET, key: value}
        with pytest.raises(ConfigError) as e:
            parse(example(lambda d, section=section: d["provisioning"].update(section)))
        assert e.value.key == f"provisioning.{key}"


class FakeHomeserver:
    """Answers ``/_matrix/federation/v1/openid/userinfo``: token -> the ``sub`` it says."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.asked: list[str] = []
        self.port = free_port()
        app = web.Application()
        app.router.add_get("/_matrix/federation/v1/openid/userinfo", self.userinfo)
        self.runner = web.AppRunner(app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def userinfo(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        self.asked.append(token)
        if token not in self.tokens:
            return web.json_response({"errcode": "M_UNKNOWN_TOKEN", "error": "?"}, status=401)
        if token == "padded":  # a valid answer, but far larger than any userinfo
            return web.json_response({"sub": self.tokens[token], "pad": "x" * 100_000})
        return web.json_response({"sub": self.tokens[token]})

    async def start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()


@pytest.fixture
async def homeserver() -> AsyncIterator[FakeHomeserver]:
    server = FakeHomeserver()
    await server.start()
    yield server
    await server.runner.cleanup()


@pytest.fixture
async def api(database: Database, homeserver: FakeHomeserver) -> AsyncIterator[ApiServer]:
    server = await serve(config(hs_address=homeserver.url))
    yield server
    await server.stop()


async def call(api: ApiServer, token: str | None, user: str | None = ADMIN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    params = {"user_id": user} if user is not None else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api.url}/accounts", headers=headers, params=params) as r:
            return r.status, await r.json()


async def test_the_shared_secret_is_compared_in_constant_time(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", compare)
    status, body = await call(api, SECRET)
    assert status == 200 and len(body["accounts"]) == ACCOUNTS
    status, body = await call(api, SECRET[:-1] + "!")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert compared == [
        (SECRET.encode(), SECRET.encode()),
        ((SECRET[:-1] + "!").encode(), SECRET.encode()),
    ]


async def test_missing_or_wrong_credentials_are_401_and_no_permission_403(
    api: ApiServer,
) -> None:
    for token, user in [
        (None, ADMIN),  # no header
        ("", ADMIN),
        ("wrong", ADMIN),
        (SECRET, None),  # whom to act for is missing
        (SECRET, "admin"),  # no user ID
        ("openid:", ADMIN),
    ]:
        status, body = await call(api, token, user)
        assert status == 401, (token, user)
        assert set(body) == {"errcode", "error"}
    status, body = await call(api, SECRET, OUTSIDER)  # no level on any account
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await call(api, SECRET, ANN)  # staff: sees the accounts, as `channels`
    assert status == 200 and len(body["accounts"]) == ACCOUNTS


async def test_an_openid_token_is_checked_with_the_users_homeserver(
    api: ApiServer, homeserver: FakeHomeserver
) -> None:
    homeserver.tokens.update(
        {
            "elsewhere": "@admin:evil.example",  # vouches for another server's user
            "bob": "@bob:example.com",  # another user of the server asked
            "ann": ANN,
            "weird": "no-server",
        }
    )
    for token in ("elsewhere", "bob", "unknown", "weird"):
        status, body = await call(api, f"openid:{token}", ADMIN if token != "bob" else ANN)
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), token
    status, body = await call(api, "openid:ann", ANN)
    assert status == 200 and len(body["accounts"]) == ACCOUNTS
    # The token proves ANN only: claiming to be the admin with it is refused.
    assert (await call(api, "openid:ann", ADMIN))[0] == 401
    asked = len(homeserver.asked)
    assert (await call(api, "openid:ann", ANN))[0] == 200  # cached: not asked again
    assert len(homeserver.asked) == asked


async def test_no_server_is_asked_about_a_user_without_permission_nor_read_without_end(
    api: ApiServer, homeserver: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    verify = auth.Authenticator.verify_openid

    async def recording(self: auth.Authenticator, user_id: str, token: str) -> None:
        asked.append(user_id)
        await verify(self, user_id, token)

    monkeypatch.setattr(auth.Authenticator, "verify_openid", recording)
    # The outsider's server is not asked (the bridge would otherwise request any URL a
    # caller names, internal addresses too).
    status, body = await call(api, "openid:anything", OUTSIDER)
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert asked == []
    homeserver.tokens["padded"] = ANN
    status, body = await call(api, "openid:padded", ANN)
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert asked == [ANN] and homeserver.asked == ["padded"]


async def test_the_cache_is_bounded_and_can_be_off(
    database: Database, homeserver: FakeHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "CACHE_SIZE", 2)
    homeserver.tokens.update({f"t{n}": ANN for n in range(3)})
    api = await serve(config(hs_address=homeserver.url))
    try:
        for n in (0, 1, 2, 0):  # t0 was pushed out by t2: asked again
            assert (await call(api, f"openid:t{n}", ANN))[0] == 200
        assert homeserver.asked == ["t0", "t1", "t2", "t0"]
    finally:
        await api.stop()
    homeserver.asked.clear()
    api = await serve(config(hs_address=homeserver.url, openid_cache=0))
    try:
        for _ in range(2):
            assert (await call(api, "openid:t0", ANN))[0] == 200
        assert homeserver.asked == ["t0", "t0"]
    finally:
        await api.stop()


async def test_an_unreachable_homeserver_is_401(database: Database) -> None:
    api = await serve(config(hs_address=f"http://127.0.0.1:{free_port()}"))
    try:
        status, body = await call(api, "openid:anything", ANN)
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    finally:
        await api.stop()


def test_which_homeserver_is_asked() -> None:
    cfg = config(hs_address="http://127.0.0.1:8008")
    assert cfg.provisioning is not None
    checker = auth.Authenticator(cfg.provisioning, "example.com", cfg.hs_address, lambda: None)  # type: ignore[arg-type,return-value]
    assert str(checker.homeserver("example.com")) == "http://127.0.0.1:8008"
    assert str(checker.homeserver("partner.example:8448")) == "https://partner.example:8448"
    for user in ("@a:example.com/x", "@a:exa mple.com", "@a:ex@mple.com", "@A:example.com"):
        assert not auth.MXID.match(user), user
