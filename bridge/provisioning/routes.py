"""The core's operations: channel accounts and their state, conversations (list, start one), and
pre-approved templates (list, send). Each calls the services function its command calls
(``channels``, ``portals``, ``start``, ``template``), with the caller as the actor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..connector import StateKind, TemplateHandler
from ..core.commands.templates import pick
from ..core.services import Services
from ..core.services.messages import Origin
from ..seams_api import ACCOUNT_ID, LIMIT, SINCE, ApiError, ApiOperation, ApiParam, ApiRequest
from ..seams_api import page as page_of
from ..types import RemoteChatID

TEXT = {"type": "string", "minLength": 1, "maxLength": 1000}
NULLABLE_TEXT = {"type": "string", "nullable": True}
ACCOUNT = {
    "type": "object",
    "required": ["account", "title", "state", "message", "portals"],
    "properties": {
        "account": {"type": "string"},
        "title": {"type": "string", "description": "The channel (Telegram, WhatsApp...)"},
        "state": {"type": "string", "enum": [k.value for k in StateKind]},
        "message": {"type": "string"},
        "portals": {"type": "integer", "minimum": 0},
    },
}
CONVERSATION: dict[str, Any] = {
    "type": "object",
    "required": ["account", "chat", "name", "room_id", "created_at"],
    "properties": {
        "account": {"type": "string"},
        "chat": {"type": "string", "description": "The remote chat id"},
        "name": NULLABLE_TEXT,
        "room_id": NULLABLE_TEXT,
        "created_at": {"type": "integer", "description": "Milliseconds since the epoch"},
    },
}
NEXT_BATCH = {"type": "string", "nullable": True, "description": "Pass as since for more"}


def page(items: Sequence[Any], request: ApiRequest) -> tuple[Sequence[Any], str | None]:
    """The page of ``items`` the ``limit`` and ``since`` of ``request`` ask for, and the
    ``next_batch`` after it (None: no more)."""
    start, limit = page_of(request)
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return chunk, str(start + limit) if more else None


def list_of(name: str, item: dict[str, Any], paged: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {name: {"type": "array", "items": item}}
    if paged:
        properties["next_batch"] = NEXT_BATCH
    return {"type": "object", "required": list(properties), "properties": properties}


def operations(services: Services) -> list[ApiOperation]:
    """The core's operations over ``services``."""

    async def accounts(request: ApiRequest) -> dict[str, Any]:
        channels = await services.channels(request.actor)
        return {"accounts": [_account(c) for c in channels]}

    async def account(request: ApiRequest) -> dict[str, Any]:
        wanted = request.params["account"]
        for channel in await services.channels(request.actor):
            if channel.account == wanted:
                return _account(channel)
        raise ApiError(404, f"There is no channel account {wanted!r} you may use")

    async def conversations(request: ApiRequest) -> dict[str, Any]:
        portals = await services.conversations(request.actor, request.params.get("account"))
        chunk, next_batch = page(portals, request)
        return {"conversations": [_conversation(p) for p in chunk], "next_batch": next_batch}

    async def start(request: ApiRequest) -> dict[str, Any]:
        body = request.body
        portal, visible = await services.start_by_address(
            request.actor, body["account"], body["address"]
        )
        return {**_conversation(portal), "invited": visible}

    async def templates(request: ApiRequest) -> dict[str, Any]:
        _, found = await services.templates(request.actor, request.params["account"])
        return {"templates": [_template(t) for t in found]}

    async def send_template(request: ApiRequest) -> dict[str, Any]:
        body = request.body
        account, chat, address = body["account"], body.get("chat"), body.get("address")
        if (chat is None) == (address is None):
            raise ApiError(400, "Name either chat or address", "M_INVALID_PARAM")
        connector, found = await services.templates(request.actor, account)
        assert isinstance(connector, TemplateHandler)
        language = [body["language"]] if "language" in body else []
        template, rest = pick(found, body["name"], language)
        if template is None or rest:
            raise ApiError(404, f"No approved template {body['name']!r}")
        origin = Origin("", request.id, request.actor)
        chat_id = RemoteChatID(chat) if chat is not None else None
        ref, visible = await services.template_to(
            account, chat_id, address, template, list(body.get("params", [])), origin
        )
        return {"account": ref.account, "chat": ref.chat, "room_id": ref.room_id,
                "invited": visible}  # fmt: skip

    account_param = ApiParam("account", "path", ACCOUNT_ID, "A channel account id")
    started = {
        "type": "object",
        "required": [*CONVERSATION["required"], "invited"],
        "properties": {**CONVERSATION["properties"], "invited": {"type": "boolean"}},
    }
    template = {
        "type": "object",
        "required": ["name", "language", "parameters", "text"],
        "properties": {
            "name": {"type": "string"},
            "language": {"type": "string"},
            "parameters": {"type": "integer"},
            "text": {"type": "string"},
        },
    }
    sent = {
        "type": "object",
        "required": ["account", "chat", "room_id", "invited"],
        "properties": {
            "account": {"type": "string"}, "chat": {"type": "string"},
            "room_id": NULLABLE_TEXT, "invited": {"type": "boolean"},
        },
    }  # fmt: skip
    return [
        ApiOperation(
            "GET", "/accounts", "listAccounts", "The channel accounts the user may use",
            "accounts", list_of("accounts", ACCOUNT), accounts, errors=(),
        ),
        ApiOperation(
            "GET", "/accounts/{account}", "getAccount", "A channel account and its state",
            "accounts", ACCOUNT, account, (account_param,), errors=(404,),
        ),
        ApiOperation(
            "GET", "/accounts/{account}/templates", "listTemplates",
            "The account's pre-approved templates (WhatsApp)", "templates",
            list_of("templates", template), templates, (account_param,),
        ),
        ApiOperation(
            "GET", "/conversations", "listConversations",
            "The conversations (portals) the user may see, oldest first", "conversations",
            list_of("conversations", CONVERSATION, paged=True), conversations,
            (ApiParam("account", "query", ACCOUNT_ID, "Only this account's"), LIMIT, SINCE),
        ),
        ApiOperation(
            "POST", "/conversations", "startConversation",
            "Start a conversation with an address (the start command); the user is invited",
            "conversations", started, start,
            body={
                "type": "object", "required": ["account", "address"],
                "properties": {"account": ACCOUNT_ID, "address": TEXT},
            },
        ),
        ApiOperation(
            "POST", "/templates/send", "sendTemplate",
            "Send a template to a chat or an address (the template command)", "templates",
            sent, send_template,
            body={
                "type": "object", "required": ["account", "name"],
                "properties": {
                    "account": ACCOUNT_ID, "chat": TEXT, "address": TEXT, "name": TEXT,
                    "language": TEXT,
                    "params": {"type": "array", "items": TEXT, "maxItems": 20},
                },
            },
        ),
    ]  # fmt: skip


def _account(channel: Any) -> dict[str, Any]:
    return {
        "account": channel.account,
        "title": channel.title,
        "state": channel.state.kind.value,
        "message": channel.state.message,
        "portals": channel.portals,
    }


def _conversation(portal: Any) -> dict[str, Any]:
    return {
        "account": portal.account,
        "chat": portal.chat,
        "name": portal.name,
        "room_id": portal.room_id,
        "created_at": portal.created_at,
    }


def _template(t: Any) -> dict[str, Any]:
    return {"name": t.name, "language": t.language, "parameters": t.parameters, "text": t.text}
