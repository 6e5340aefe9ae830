"""The inbox's operations on the provisioning API: list conversations (by status, team,
assignee, account; paged), assign one, resolve or reopen one. An action runs the same function
as its command (``InboxCommands.assign_to``, ``set_status``) as the caller, as if they had
sent the command in the conversation's room, and its answer is posted there as a notice, as
the command's answer would be."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...db import Portal
from ...db.inbox import STATUSES, InboxConversation
from ...seams import ConversationRef, Seams, Services
from ...seams_api import (
    ACCOUNT_ID,
    LIMIT,
    SINCE,
    ApiError,
    ApiOperation,
    ApiParam,
    ApiRequest,
    page,
)  # fmt: skip
from ...types import AccountID, RemoteChatID
from .commands import REOPENED, RESOLVED, InboxCommands
from .desk import Desk, txn

CHAT = {"type": "string", "minLength": 1, "maxLength": 255}
USER = {"type": "string", "pattern": "^(me|@[^:]+:.+)$", "maxLength": 255}
NULLABLE = {"type": "string", "nullable": True}
NULLABLE_TIME = {"type": "integer", "nullable": True}
CONVERSATION = {
    "type": "object",
    "required": ["account", "chat", "team", "status", "assignee", "waiting_since", "name",
                 "room_id"],
    "properties": {
        "account": {"type": "string"}, "chat": {"type": "string"}, "team": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)}, "assignee": NULLABLE,
        "waiting_since": NULLABLE_TIME, "name": NULLABLE, "room_id": NULLABLE,
    },
}  # fmt: skip
LISTING = {
    "type": "object",
    "required": ["conversations", "next_batch"],
    "properties": {
        "conversations": {"type": "array", "items": CONVERSATION},
        "next_batch": {"type": "string", "nullable": True},
    },
}
ANSWER = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string", "description": "As posted in the room"}},
}


@dataclass
class ApiContext:
    """A ``CommandContext`` for a call of the API: as if the caller wrote in the room."""

    services: Services
    room_id: str
    event_id: str
    sender: str
    conversation: ConversationRef | None


class InboxApi:
    def __init__(self, desk: Desk, commands: InboxCommands, accounts: list[str]) -> None:
        self.desk = desk
        self.commands = commands
        self.accounts = accounts

    async def listing(self, request: ApiRequest) -> dict[str, Any]:
        actor, params = request.actor, request.params
        teams = [t for t in self.desk.config.teams if self.desk.may_see(actor, t)]
        accounts = [a for a in self.accounts if self.desk.services.level(actor, a) != "none"]
        filters = {k: params[k] for k in ("status", "team", "assignee", "account") if k in params}
        offset, limit = page(request)
        rows = await InboxConversation.listing(teams, accounts, filters, offset, limit + 1)
        out = []
        for row in rows[:limit]:
            portal = await Portal.get(row.account, row.chat)
            out.append({
                "account": row.account, "chat": row.chat, "team": row.team,
                "status": row.status, "assignee": row.assignee,
                "waiting_since": row.waiting_since, "name": portal.name if portal else None,
                "room_id": portal.room_id if portal else None,
            })  # fmt: skip
        next_batch = str(offset + limit) if len(rows) > limit else None
        return {"conversations": out, "next_batch": next_batch}

    async def _context(self, request: ApiRequest) -> ApiContext:
        account, chat = request.params["account"], request.params["chat"]
        portal = None
        if self.desk.services.level(request.actor, account) != "none":
            portal = await Portal.get(account, chat)
        if portal is None or not portal.room_id:
            raise ApiError(404, "No such conversation you may see")
        ref = ConversationRef(AccountID(account), RemoteChatID(chat), portal.room_id)
        return ApiContext(self.desk.services, portal.room_id, request.id, request.actor, ref)

    async def _answer(self, ctx: ApiContext, answer: str) -> dict[str, Any]:
        await self.desk.services.notice(ctx.room_id, answer, txn=txn("api", ctx.event_id))
        return {"message": answer}

    async def assign(self, request: ApiRequest) -> dict[str, Any]:
        ctx = await self._context(request)
        answer = await self.commands.assign_to(ctx, request.body["user"])
        if request.body["user"] == "me" and ctx.conversation is not None:
            # The command's sender is in the room already; the API's caller is invited.
            await ctx.services.invite(ctx.room_id, ctx.sender, ctx.conversation.account)
        return await self._answer(ctx, answer)

    async def resolve(self, request: ApiRequest) -> dict[str, Any]:
        ctx = await self._context(request)
        return await self._answer(ctx, await self.commands.set_status(ctx, "resolved", RESOLVED))

    async def reopen(self, request: ApiRequest) -> dict[str, Any]:
        ctx = await self._context(request)
        return await self._answer(ctx, await self.commands.set_status(ctx, "open", REOPENED))


def add_operations(seams: Seams, desk: Desk, commands: InboxCommands) -> None:
    api = InboxApi(desk, commands, list(seams.config.channels))
    where = "/inbox/conversations/{account}/{chat}"
    path = (
        ApiParam("account", "path", ACCOUNT_ID, "The channel account"),
        ApiParam("chat", "path", CHAT, "The remote chat id (URL-encoded)"),
    )
    errors = (400, 403, 404, 409)
    seams.add_api(ApiOperation(
        "GET", "/inbox/conversations", "listInboxConversations",
        "The inbox's conversations of the teams and accounts the user may see, oldest first",
        "inbox", LISTING, api.listing,
        (
            ApiParam("status", "query", {"type": "string", "enum": list(STATUSES)}, "Only these"),
            ApiParam("team", "query", CHAT, "Only this team's"),
            ApiParam("assignee", "query", CHAT, "Only those assigned to this user"),
            ApiParam("account", "query", ACCOUNT_ID, "Only this account's"),
            LIMIT, SINCE,
        ), errors=(),
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "POST", f"{where}/assign", "assignConversation",
        "Give a conversation to a member of its team, or to the user (me): the assign command",
        "inbox", ANSWER, api.assign, path, errors=errors,
        body={"type": "object", "required": ["user"], "properties": {"user": USER}},
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "POST", f"{where}/resolve", "resolveConversation",
        "Mark a conversation resolved: the resolve command", "inbox", ANSWER, api.resolve,
        path, errors=errors,
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "POST", f"{where}/reopen", "reopenConversation",
        "Open a conversation again: the reopen command", "inbox", ANSWER, api.reopen, path,
        errors=errors,
    ))  # fmt: skip
