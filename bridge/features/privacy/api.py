"""The privacy feature's operations on the provisioning API: a data export and an erasure,
asked for, and the erasure confirmed or cancelled, as with ``privacy export`` and ``privacy
erase``, by the same functions (an admin of every account the person is on; only the admin
who asked may confirm). The export goes, as for the command, to the caller's room with the bot
("Data protection"), for them only; an erasure's notices go there too."""

from __future__ import annotations

from typing import Any

from ...seams import Seams
from ...seams_api import ApiOperation, ApiParam, ApiRequest
from .erase import EraseCommand
from .export import ROOM_NAME, ROOM_TOPIC, Exporter

IDENTITY = {
    "type": "string", "minLength": 1, "maxLength": 1000,
    "description": "A phone number, a mail address, <account>:<id> or contact:<n>",
}  # fmt: skip
ANSWER = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string", "description": "As the command answers"}},
}
ERASURE = {
    "type": "object",
    "required": ["erasure", "message"],
    "properties": {
        "erasure": {"type": "integer", "description": "Confirm or cancel it by this number"},
        "message": {"type": "string", "description": "What it would erase"},
    },
}
BODY = {"type": "object", "required": ["identity"], "properties": {"identity": IDENTITY}}


class PrivacyApi:
    def __init__(self, exporter: Exporter, eraser: EraseCommand) -> None:
        self.exporter = exporter
        self.eraser = eraser

    async def export(self, request: ApiRequest) -> dict[str, Any]:
        answer = await self.exporter.export(request.actor, request.body["identity"], request.id)
        return {"message": answer}

    async def erase(self, request: ApiRequest) -> dict[str, Any]:
        actor = request.actor
        room = await self.eraser.services.bot_room(
            f"privacy-{actor}", ROOM_NAME, ROOM_TOPIC, [actor]
        )
        number, answer = await self.eraser.request(actor, room, request.body["identity"])
        return {"erasure": number, "message": answer}

    async def decide(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        answer = await self.eraser.decide(request.actor, params["decision"], params["id"])
        return {"message": answer}


def add_operations(seams: Seams, exporter: Exporter, eraser: EraseCommand) -> None:
    api = PrivacyApi(exporter, eraser)
    seams.add_api(ApiOperation(
        "POST", "/privacy/exports", "exportPerson",
        "Export everything held about a person into the caller's room with the bot (privacy "
        "export)", "privacy", ANSWER, api.export, errors=(400, 403, 404, 502), body=BODY,
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "POST", "/privacy/erasures", "requestErasure",
        "Ask for a person's erasure: what it would erase; nothing changes before it is "
        "confirmed (privacy erase)", "privacy", ERASURE, api.erase, body=BODY,
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "POST", "/privacy/erasures/{id}/{decision}", "decideErasure",
        "Confirm or cancel an erasure (only who asked for it)", "privacy", ANSWER, api.decide,
        (
            ApiParam("id", "path", {"type": "integer", "minimum": 1, "maximum": 2**53},
                     "The erasure's number"),
            ApiParam("decision", "path", {"type": "string", "enum": ["confirm", "cancel"]},
                     "What to do"),
        ),
        errors=(400, 403, 404, 409),
    ))  # fmt: skip
