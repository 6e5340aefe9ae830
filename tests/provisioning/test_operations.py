"""The provisioning API's operations on the bridge's listener, over the services layer and the
inbox, on both database backends: accounts, conversations (listed, paged, started), templates,
the inbox's listing with its filters, assign and resolve (the commands' own function: the
same answers, posted in the room, and the same permission checks), and JSON errors for
unknown paths and bad bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from mautrix.errors import MForbidden
from mautrix.util.async_db import Database

from bridge.core.commands import CommandRunner
from bridge.core.notices import Notices
from bridge.db import InboxConversation, Portal
from tests.db.support import database, databases
from tests.provisioning.support import ADMIN, ANN, BOB, SAM, SECRET, ApiServer, seed, serve

__all__ = ["database", "databases"]


@pytest.fixture
async def api(database: Database) -> AsyncIterator[ApiServer]:
    server = await serve()
    await seed()
    yield server
    await server.stop()


async def call(
    api: ApiServer, method: str, path: str, user: str = ADMIN, body: Any = None, **query: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {SECRET}"}
    params = {"user_id": user, **{k: str(v) for k, v in query.items()}}
    async with aiohttp.ClientSession() as http:
        async with http.request(
            method, api.url + path, headers=headers, params=params, json=body
        ) as r:
            return r.status, await r.json()


async def test_accounts_and_conversations(api: ApiServer) -> None:
    status, body = await call(api, "GET", "/accounts/support-webhook")
    assert status == 200
    assert body == {"account": "support-webhook", "title": "Test channel",
                    "state": "connected", "message": "", "portals": 3}  # fmt: skip
    assert (await call(api, "GET", "/accounts/nope"))[0] == 404
    status, body = await call(api, "GET", "/conversations", limit=2)
    assert status == 200 and [c["chat"] for c in body["conversations"]] == ["c0", "c1"]
    status, body = await call(api, "GET", "/conversations", limit=2, since=body["next_batch"])
    assert [c["chat"] for c in body["conversations"]] == ["c2", "c3"]
    status, body = await call(api, "GET", "/conversations", account="support-whatsapp")
    assert [c["chat"] for c in body["conversations"]] == ["c3", "c4"]
    assert body["next_batch"] is None


async def test_starting_a_conversation_and_sending_a_template(api: ApiServer) -> None:
    status, body = await call(
        api, "POST", "/conversations", ANN, {"account": "support-whatsapp", "address": "+4915"}
    )
    assert status == 400 and "no phone number" in body["error"]
    status, body = await call(
        api, "POST", "/conversations", ANN,
        {"account": "support-whatsapp", "address": "+491512345"},
    )  # fmt: skip
    assert status == 200 and body["chat"] == "491512345" and body["invited"] is True
    assert (body["room_id"], ANN) in api.sender.invites
    template = {"account": "support-whatsapp", "chat": "491512345", "name": "order_update"}
    status, body = await call(api, "POST", "/templates/send", ANN, {**template, "params": []})
    assert status == 400 and "takes 1 parameter(s), not 0" in body["error"]
    status, body = await call(
        api, "POST", "/templates/send", ANN, {**template, "params": ["A-17"], "language": "en"}
    )
    assert status == 200 and body["chat"] == "491512345"
    (item,) = api.queued.items
    assert item.payload["text"] == "Your order A-17 is on its way"
    assert item.payload["by"] == ANN and "origin" not in item.payload  # failures: in the room
    status, body = await call(api, "POST", "/templates/send", ANN, {**template, "name": "x"})
    assert status == 404


async def test_the_start_command_does_what_the_api_does(api: ApiServer) -> None:
    runner = CommandRunner(api.services, Notices(api.sender), ())
    await runner.run("!dm:example.com", "$cmd", ANN, None, "start support-whatsapp +491599")
    await runner.run("!dm:example.com", "$cmd2", ANN, None, "start nope +491599")
    (started, refused) = [text for room, text in api.sender.sent if room == "!dm:example.com"]
    portal = await Portal.get("support-whatsapp", "491599")
    assert portal is not None and (portal.room_id, ANN) in api.sender.invites
    assert started == f"The conversation with +491599 is in {portal.room_id}; you are invited."
    status, body = await call(
        api, "POST", "/conversations", ANN, {"account": "support-whatsapp", "address": "+491599"}
    )
    assert (status, body["room_id"]) == (200, portal.room_id)  # the same conversation
    assert refused == "There is no channel account 'nope' you may use. See `channels`."
    status, body = await call(
        api, "POST", "/conversations", ANN, {"account": "nope", "address": "+491599"}
    )
    assert (status, body["error"]) == (403, refused)  # the same refusal


async def test_the_inbox_listing_and_its_filters(api: ApiServer) -> None:
    async def chats(user: str = ADMIN, **query: Any) -> list[str]:
        status, body = await call(api, "GET", "/inbox/conversations", user, **query)
        assert status == 200
        return [c["chat"] for c in body["conversations"]]

    assert await chats() == ["c0", "c1", "c2", "c3", "c4"]
    assert await chats(ANN) == ["c0", "c1", "c2"]  # her team's only
    assert await chats(SAM) == ["c3", "c4"]
    assert await chats(team="sales") == ["c3", "c4"]
    assert await chats(ANN, team="sales") == []
    assert await chats(account="support-whatsapp") == ["c3", "c4"]
    await InboxConversation.assign("support-webhook", "c1", BOB, 2000)
    assert await chats(assignee=BOB) == ["c1"]
    await InboxConversation.set_status("support-webhook", "c2", "resolved", 2000)
    assert await chats(status="resolved") == ["c2"]
    status, body = await call(api, "GET", "/inbox/conversations", limit=2, since=2)
    assert [c["chat"] for c in body["conversations"]] == ["c2", "c3"]
    assert body["next_batch"] == "4"
    assert body["conversations"][0] == {
        "account": "support-webhook", "chat": "c2", "team": "support", "status": "resolved",
        "assignee": None, "waiting_since": 1002, "name": "Customer 2",
        "room_id": "!c2:example.com",
    }  # fmt: skip
    status, body = await call(api, "GET", "/inbox/conversations", status="gone")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_assign_and_resolve_as_the_commands_do(api: ApiServer) -> None:
    where = "/inbox/conversations/support-webhook/c0"
    status, body = await call(api, "POST", f"{where}/assign", SAM, {"user": "me"})
    assert (status, body["error"]) == (403, "Only the members of team support may do this.")
    status, body = await call(api, "POST", f"{where}/assign", ANN, {"user": SAM})
    assert (status, body["error"]) == (
        400,
        f"{SAM} is not a member of team support. Usage: assign @user | me",
    )
    status, body = await call(api, "POST", f"{where}/assign", ANN, {"user": BOB})
    assert (status, body) == (200, {"message": "👤 ann assigned this conversation to bob."})
    assert ("!c0:example.com", body["message"]) in api.sender.sent  # shown in the room
    assert (await InboxConversation.get("support-webhook", "c0")).assignee == BOB  # type: ignore[union-attr]
    status, body = await call(api, "POST", f"{where}/resolve", BOB)
    assert (status, body) == (200, {"message": "✅ bob resolved this conversation."})
    status, body = await call(api, "POST", f"{where}/resolve", BOB)
    assert (status, body["error"]) == (409, "This conversation is resolved already.")
    status, body = await call(api, "POST", f"{where}/assign", ANN, {"user": "me"})
    assert (status, body["error"]) == (
        409, "bob has this conversation; `assign @user` gives it to someone."
    )  # fmt: skip
    other = "/inbox/conversations/support-webhook/c1/assign"
    status, body = await call(api, "POST", other, ANN, {"user": "me"})
    assert (status, body) == (200, {"message": "👤 ann took this conversation."})
    assert ("!c1:example.com", ANN) in api.sender.invites  # the caller, into the room
    status, body = await call(api, "POST", f"{where}/reopen", ADMIN)  # admins: every team
    assert status == 200 and body["message"] == "🔄 admin reopened this conversation."
    status, _ = await call(api, "POST", "/inbox/conversations/support-webhook/c9/resolve")
    assert status == 404
    status, _ = await call(api, "POST", "/inbox/conversations/nope/c0/resolve")
    assert status == 404


async def test_errors_are_json(api: ApiServer) -> None:
    status, body = await call(api, "GET", "/nothing")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    status, body = await call(api, "DELETE", "/accounts")
    assert status == 405 and set(body) == {"errcode", "error"}
    where = "/inbox/conversations/support-webhook/c0/assign"
    for bad in ({}, {"user": 3}, {"user": "me", "more": 1}, [], "me"):
        status, body = await call(api, "POST", where, body=bad)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
    async with aiohttp.ClientSession() as http:
        async with http.get(api.url + "/openapi.json") as r:
            document = await r.json()
    assert document["openapi"].startswith("3.")
    assert "/inbox/conversations/{account}/{chat}/resolve" in document["paths"]


async def test_consent_recorded_shown_and_withdrawn(api: ApiServer) -> None:
    person = {"account": "support-webhook", "remote_user": "user-c0", "list": "newsletter"}
    proof = {"consented_at": 1_700_000_000_000, "version": "2026-01", "source": "shop #1"}
    status, body = await call(api, "POST", "/consent/record", ANN, {**person, **proof})
    assert status == 403  # staff may not claim a consent: admins of the account
    status, body = await call(api, "POST", "/consent/record", body={**person, "version": "1",
                              "consented_at": 1, "source": "shop"})  # fmt: skip
    assert status == 400 and "version 1 of list newsletter is unknown" in body["error"]
    status, body = await call(api, "POST", "/consent/record", body={**person, **proof})
    assert status == 200 and body["recorded"] is True
    contact = body["contact"]

    status, body = await call(api, "GET", "/consent/contacts/support-webhook:user-c0", ANN)
    assert status == 200 and body["contact"] == contact
    assert body["identities"] == [{"account": "support-webhook", "remote_user": "user-c0"}]
    (step,) = body["events"]
    assert (step["step"], step["list"], step["trigger"]) == ("imported", "newsletter",
                                                             f"import by {ADMIN}")  # fmt: skip
    assert step["text"].startswith("2026-01, sha256 ")
    # Staff on every account the contact is on (here: by domain) may see it, as with `consent`.
    assert (await call(api, "GET", f"/consent/contacts/{contact}", SAM))[0] == 200
    assert (await call(api, "GET", "/consent/contacts/999"))[0] == 404

    status, body = await call(api, "POST", "/consent/withdraw", BOB, person)
    assert (status, body) == (200, {"contact": contact, "recorded": True})
    status, body = await call(api, "POST", "/consent/withdraw", BOB, person)
    assert (status, body) == (200, {"contact": contact, "recorded": False})
    status, body = await call(api, "GET", f"/consent/contacts/#{contact}".replace("#", "%23"))
    assert [e["step"] for e in body["events"]] == ["imported", "withdrawn"]
    unknown = {**person, "remote_user": "nobody"}
    assert (await call(api, "POST", "/consent/withdraw", BOB, unknown))[0] == 404


async def test_a_broadcast_sent_followed_and_cancelled(api: ApiServer) -> None:
    status, body = await call(api, "GET", "/broadcast/lists", ANN)
    assert status == 200
    (listed,) = body["lists"]
    assert (listed["name"], listed["current"]) == ("newsletter", None)
    where = "/broadcast/lists/newsletter/broadcasts"
    assert (await call(api, "POST", "/broadcast/lists/nope/broadcasts", body={"text": "x"}))[
        0
    ] == 404
    status, body = await call(api, "POST", where, ANN, {"text": "News!", "at": "25:99"})
    assert (status, body["error"]) == (400, "no such time: hour must be in 0..23")
    status, body = await call(api, "POST", where, ANN, {"text": "News!", "at": "2999-01-01 09:00"})
    assert status == 200 and (body["state"], body["created_by"]) == ("scheduled", ANN)
    broadcast = body["id"]
    status, body = await call(api, "GET", "/broadcast/lists", BOB)
    assert body["lists"][0]["current"]["id"] == broadcast
    status, body = await call(api, "POST", where, BOB, {"text": "Other news"})
    assert status == 409 and "cancel it first" in body["error"]  # as `send` in the room
    status, body = await call(api, "GET", f"/broadcast/broadcasts/{broadcast}", BOB)
    assert status == 200 and body["state"] == "scheduled"
    status, body = await call(api, "POST", f"/broadcast/broadcasts/{broadcast}/pause", BOB)
    assert (status, body["error"]) == (409, f"broadcast {broadcast} is scheduled: cannot pause")
    status, body = await call(api, "POST", f"/broadcast/broadcasts/{broadcast}/cancel", BOB)
    assert status == 200 and body["state"] == "cancelled"
    assert (await call(api, "GET", "/broadcast/broadcasts/999"))[0] == 404
    assert (await call(api, "POST", f"/broadcast/broadcasts/{broadcast}/explode"))[0] == 400


async def test_a_persons_export_and_erasure_asked_for(api: ApiServer) -> None:
    who = {"identity": "support-webhook:c0"}
    status, body = await call(api, "POST", "/privacy/exports", ANN, who)
    assert status == 403 and body["error"].startswith("Only an admin of every channel account")
    status, body = await call(api, "POST", "/privacy/exports", body={"identity": "nobody"})
    assert status == 404
    status, body = await call(api, "POST", "/privacy/exports", body=who)
    assert status == 200 and body["message"].startswith("📦 Export privacy-export-")
    assert any(text.startswith("privacy-export-") for _, text in api.sender.sent)  # the file

    assert (await call(api, "POST", "/privacy/erasures", ANN, who))[0] == 403
    status, body = await call(api, "POST", "/privacy/erasures", body=who)
    assert status == 200 and body["message"].startswith(f"Erasure #{body['erasure']} of ")
    erasure = body["erasure"]
    status, body = await call(api, "POST", f"/privacy/erasures/{erasure}/confirm", ANN)
    assert (status, body["error"]) == (
        403, f"Only {ADMIN}, who asked for erasure #{erasure}, may confirm it."
    )  # fmt: skip
    status, body = await call(api, "POST", f"/privacy/erasures/{erasure}/cancel")
    assert (status, body) == (
        200,
        {"message": f"Erasure #{erasure} cancelled; nothing was erased."},
    )
    status, body = await call(api, "POST", f"/privacy/erasures/{erasure}/confirm")
    assert (status, body["error"]) == (
        409,
        f"Erasure #{erasure} is cancelled; nothing was changed.",
    )
    assert (await call(api, "POST", "/privacy/erasures/999/confirm"))[0] == 404


async def test_a_homeserver_refusal_is_502_and_a_failure_500(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> str:
        raise MForbidden(403, "no rooms for you")

    async def fail(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("a bug")

    start = {"account": "support-whatsapp", "address": "+491512345"}
    monkeypatch.setattr(api.sender, "create_room", refuse)
    status, body = await call(api, "POST", "/conversations", ANN, start)
    assert (status, body) == (
        502, {"errcode": "M_BAD_GATEWAY", "error": "The homeserver refused: no rooms for you"}
    )  # fmt: skip
    monkeypatch.setattr(api.sender, "create_room", fail)
    status, body = await call(api, "POST", "/conversations", ANN, start)
    assert (status, body["errcode"]) == (500, "M_UNKNOWN")
