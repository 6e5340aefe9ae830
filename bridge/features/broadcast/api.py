"""The broadcast feature's operations on the provisioning API: the lists (with the broadcast of
each that is scheduled, running or paused), a broadcast created and sent (now or at a time),
a broadcast's progress (its recipients per status), and pausing, resuming or cancelling it.
Each goes the way of the list's broadcast room (``room.py``): the same permission (a level on
every account of the list), the same draft-and-send steps by one author, the same engine; the
progress notices go to the list's room as for a broadcast started there."""

from __future__ import annotations

from typing import Any

from ...db.broadcast import STATUSES, Broadcast, Recipient
from ...seams import Seams
from ...seams_api import ApiError, ApiOperation, ApiParam, ApiRequest
from .engine import BroadcastError, Content, Engine
from .room import ACTIONS, BroadcastRooms, NotAllowed

NAME = {"type": "string", "minLength": 1, "maxLength": 255}
NULLABLE_TIME = {"type": "integer", "nullable": True}
BROADCAST = {
    "type": "object",
    "required": ["id", "list", "state", "created_by", "scheduled_at", "started_at",
                 "finished_at", "recipients"],
    "properties": {
        "id": {"type": "integer"}, "list": {"type": "string"}, "state": {"type": "string"},
        "created_by": {"type": "string"}, "scheduled_at": NULLABLE_TIME,
        "started_at": NULLABLE_TIME, "finished_at": NULLABLE_TIME,
        "recipients": {
            "type": "object", "description": "How many recipients have each status",
            "properties": {s: {"type": "integer"} for s in STATUSES},
            "additionalProperties": {"type": "integer"},
        },
    },
}  # fmt: skip
LISTS = {
    "type": "object",
    "required": ["lists"],
    "properties": {"lists": {"type": "array", "items": {
        "type": "object", "required": ["name", "title", "accounts", "current"],
        "properties": {
            "name": {"type": "string"}, "title": {"type": "string"},
            "accounts": {"type": "array", "items": {"type": "string"}},
            "current": {**BROADCAST, "nullable": True},
        },
    }}},
}  # fmt: skip


async def _broadcast(found: Broadcast) -> dict[str, Any]:
    return {
        "id": found.id, "list": found.list, "state": found.state,
        "created_by": found.created_by, "scheduled_at": found.scheduled_at,
        "started_at": found.started_at, "finished_at": found.finished_at,
        "recipients": await Recipient.counts(found.id),
    }  # fmt: skip


class BroadcastApi:
    def __init__(self, engine: Engine, rooms: BroadcastRooms) -> None:
        self.engine = engine
        self.rooms = rooms

    def _may(self, list_: str, actor: str) -> None:
        try:
            self.rooms.may_broadcast(list_, actor)
        except NotAllowed as e:
            raise ApiError(403, str(e)) from e
        except BroadcastError as e:  # no such list
            raise ApiError(404, str(e)) from e

    async def lists(self, request: ApiRequest) -> dict[str, Any]:
        out = []
        for item in self.engine.config.lists.values():
            if any(self.rooms.services.level(request.actor, a) == "none" for a in item.accounts):
                continue
            current = await self.engine.current(item.name)
            out.append({
                "name": item.name, "title": item.title, "accounts": list(item.accounts),
                "current": None if current is None else await _broadcast(current),
            })  # fmt: skip
        return {"lists": out}

    async def create(self, request: ApiRequest) -> dict[str, Any]:
        list_, body, actor = request.params["list"], request.body, request.actor
        self._may(list_, actor)
        try:
            at = self.rooms.parse_time(body["at"]) if "at" in body else None
        except BroadcastError as e:
            raise ApiError(400, str(e)) from e
        try:
            content = Content(body["text"], body.get("html"), None)
            draft = await self.engine.draft(list_, self.rooms.room_of(list_), content, actor)
            found = await self.rooms.send(list_, actor, at, draft)
        except BroadcastError as e:
            raise ApiError(409, str(e)) from e
        return await _broadcast(found)

    async def _found(self, request: ApiRequest) -> Broadcast:
        found = await Broadcast.get(request.params["id"])
        if found is None or found.list not in self.engine.config.lists:
            raise ApiError(404, "No such broadcast")
        self._may(found.list, request.actor)
        return found

    async def progress(self, request: ApiRequest) -> dict[str, Any]:
        return await _broadcast(await self._found(request))

    async def control(self, request: ApiRequest) -> dict[str, Any]:
        found = await self._found(request)
        try:
            await self.rooms.control(found, request.params["action"])
        except BroadcastError as e:
            raise ApiError(409, str(e)) from e
        return await _broadcast(await Broadcast.get(found.id) or found)


def add_operations(seams: Seams, engine: Engine, rooms: BroadcastRooms) -> None:
    api = BroadcastApi(engine, rooms)
    list_param = ApiParam("list", "path", NAME, "A broadcast list")
    id_param = ApiParam("id", "path", {"type": "integer", "minimum": 1, "maximum": 2**53},
                        "A broadcast")  # fmt: skip
    seams.add_api(ApiOperation(
        "GET", "/broadcast/lists", "listBroadcastLists",
        "The broadcast lists the user may broadcast on, each with its current broadcast",
        "broadcast", LISTS, api.lists, errors=(),
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "POST", "/broadcast/lists/{list}/broadcasts", "sendBroadcast",
        "Send a message to the list's confirmed subscribers, now or at a time (as a draft "
        "and `send` in the list's room)", "broadcast", BROADCAST, api.create, (list_param,),
        errors=(400, 403, 404, 409),
        body={"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 20000},
            "html": {"type": "string", "maxLength": 50000},
            "at": {"type": "string", "maxLength": 32,
                   "description": "HH:MM or YYYY-MM-DD HH:MM in the configured time zone"},
        }},
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "GET", "/broadcast/broadcasts/{id}", "getBroadcast",
        "A broadcast's state and its recipients per status", "broadcast", BROADCAST,
        api.progress, (id_param,),
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "POST", "/broadcast/broadcasts/{id}/{action}", "controlBroadcast",
        "Pause, resume or cancel a broadcast", "broadcast", BROADCAST, api.control,
        (id_param, ApiParam("action", "path", {"type": "string", "enum": list(ACTIONS)},
                            "What to do")),
        errors=(400, 403, 404, 409),
    ))  # fmt: skip
