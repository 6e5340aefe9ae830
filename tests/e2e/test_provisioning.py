"""The provisioning API end to end: the bridge process with a real Synapse, the API on its
appservice listener. An in-house system lists the inbox with the shared secret (acting for a
staff member); the staff member's own Matrix OpenID token (``POST /_matrix/client/v3/user/
{userId}/openid/request_token``), checked by the bridge with Synapse, lists, assigns and
resolves a conversation (the answers shown in its room, as the commands' are) and starts a
new one on WhatsApp. Wrong credentials are 401; a user without permission 403."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest_asyncio
from ruamel.yaml import YAML

from tests.conftest import SERVER_NAME, Stack, build_stack
from tests.e2e.helpers import customer_msg, join_invite_named
from tests.infra.staff import StaffClient

ANN = f"@ann:{SERVER_NAME}"
SECRET = secrets.token_urlsafe(32)
PREFIX = "/_matrix/provision/v1"
FEATURES = {
    "inbox": {
        "teams": {"support": {"members": [ANN], "invite": "team"}},
        "accounts": {"hooks": "support"},
    }
}


@dataclass
class Api:
    stack: Stack
    ann: StaffClient

    async def call(
        self, token: str, method: str, path: str, user: str = ANN, body: Any = None, **query: str
    ) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http:
            async with http.request(
                method, f"{self.stack.bridge.url}{PREFIX}{path}", json=body,
                headers={"Authorization": f"Bearer {token}"}, params={"user_id": user, **query},
            ) as r:  # fmt: skip
                return r.status, await r.json()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(tmp_path_factory: Any) -> AsyncIterator[Api]:
    async with build_stack(tmp_path_factory.mktemp("provisioning"), features=FEATURES) as stack:
        yaml = YAML()
        data = yaml.load(stack.config_path.read_text())
        data["provisioning"]["shared_secret"] = SECRET
        data["channels"]["hooks"]["staff"] = []  # the inbox invites the team
        with stack.config_path.open("w") as f:
            yaml.dump(data, f)
        stack.bridge.stop()
        await stack.bridge.astart()
        await stack.synapse.aregister_user("ann", "pw-ann-secret")
        ann = await StaffClient.login(stack.synapse.base_url, ANN, "pw-ann-secret")
        try:
            yield Api(stack, ann)
        finally:
            await ann.close()


async def test_shared_secret_and_openid_token(api: Api) -> None:
    status, body = await api.stack.peer.send("hooks", customer_msg("api-1", "hello", "api-1-1"))
    assert status == 200, body
    room_id = await join_invite_named(api.ann, "🟡 Customer api-1")
    # An in-house system, acting for ann with the shared secret.
    status, body = await api.call(SECRET, "GET", "/inbox/conversations", status="open")
    assert status == 200, body
    (listed,) = body["conversations"]
    assert (listed["chat"], listed["room_id"], listed["assignee"]) == ("api-1", room_id, None)

    grant = await api.ann.api(
        "POST", f"/_matrix/client/v3/user/{quote(ANN)}/openid/request_token", {}
    )
    token = f"openid:{grant['access_token']}"
    status, body = await api.call(token, "GET", "/conversations", account="hooks")
    assert status == 200 and [c["chat"] for c in body["conversations"]] == ["api-1"]
    where = "/inbox/conversations/hooks/api-1"
    status, body = await api.call(token, "POST", f"{where}/assign", body={"user": "me"})
    assert (status, body) == (200, {"message": "👤 ann took this conversation."})
    status, body = await api.call(token, "POST", f"{where}/resolve")
    assert (status, body) == (200, {"message": "✅ ann resolved this conversation."})
    await api.ann.wait_for_event(
        lambda e: e.get("content", {}).get("body") == body["message"], room_id=room_id
    )
    status, body = await api.call(token, "GET", "/inbox/conversations", status="resolved")
    assert [(c["chat"], c["assignee"]) for c in body["conversations"]] == [("api-1", ANN)]

    # A new conversation on WhatsApp, started with the token: ann is invited to its room.
    status, body = await api.call(
        token, "POST", "/conversations", body={"account": "wa", "address": "+4915112345678"}
    )
    assert status == 200, body
    assert body["chat"] == "4915112345678" and body["invited"] is True
    await api.ann.wait_for_invite()

    # Wrong credentials: 401; the token proves ann only; a user without permission: 403.
    for wrong, user in [
        ("wrong-secret", ANN),
        ("openid:not-a-token", ANN),
        (token, api.stack.staff_id),  # ann's token, claiming to be the admin
    ]:
        status, body = await api.call(wrong, "GET", "/accounts", user=user)
        assert (status, body["errcode"]) in {(401, "M_UNKNOWN_TOKEN")}, (wrong, user)
    status, body = await api.call(SECRET, "GET", "/accounts", user="@eve:elsewhere.example")
    assert status == 403
