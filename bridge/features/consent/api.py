"""The consent feature's operations on the provisioning API.

``GET /consent/contacts/{contact}``
    A contact's identities and consent history: what the ``consent`` command shows (the same
    functions, the same rule: staff on every account the contact has an identity on).
``POST /consent/record``
    A consent the person gave elsewhere (a shop's checkout, a signed form), recorded with its
    proof through the registry's import (``Registry.import_identity``: refused without when,
    which text version and where the proof is kept). Admins of the account only: the record
    is what every broadcast goes by. Each call appends a step to the ledger (a repeat too, as
    an import does).
``POST /consent/withdraw``
    The person withdrew a consent elsewhere (told the shop): recorded as the opt-out flows
    record it (``Registry.withdraw``). Staff of the account.
"""

from __future__ import annotations

from typing import Any

from ...db.consent import GIVEN
from ...seams import Seams, Services
from ...seams_api import ACCOUNT_ID, ApiError, ApiOperation, ApiParam, ApiRequest
from .commands import ConsentCommands
from .registry import ConsentError, ImportProof, Registry

TEXT = {"type": "string", "minLength": 1, "maxLength": 1000}
KEY = {"type": "string", "minLength": 1, "maxLength": 255}
"""In a path: the request line has a limit (8 KiB on the listener)."""
PERSON = {"account": ACCOUNT_ID, "remote_user": TEXT, "list": TEXT}
HISTORY = {
    "type": "object",
    "required": ["contact", "identities", "events"],
    "properties": {
        "contact": {"type": "integer"},
        "identities": {"type": "array", "items": {
            "type": "object", "required": ["account", "remote_user"],
            "properties": {"account": {"type": "string"}, "remote_user": {"type": "string"}},
        }},
        "events": {"type": "array", "items": {
            "type": "object", "required": ["at", "account", "list", "step", "trigger", "text"],
            "properties": {
                "at": {"type": "integer"}, "account": {"type": "string"},
                "list": {"type": "string"}, "step": {"type": "string"},
                "trigger": {"type": "string"}, "text": {"type": "string"},
            },
        }},
    },
}  # fmt: skip
RESULT = {
    "type": "object",
    "required": ["contact", "recorded"],
    "properties": {
        "contact": {"type": "integer"},
        "recorded": {"type": "boolean", "description": "False: nothing to withdraw"},
    },
}


class ConsentApi:
    def __init__(self, registry: Registry, commands: ConsentCommands, services: Services) -> None:
        self.registry = registry
        self.commands = commands
        self.services = services

    async def history(self, request: ApiRequest) -> dict[str, Any]:
        contact = await self.commands.find_word(request.params["contact"])
        if isinstance(contact, str):
            raise ApiError(404, contact)
        refused = await self.commands.refusal(self.services, request.actor, contact, "staff")
        if refused:
            raise ApiError(403, refused)
        identities, events = await self.commands.history(contact)
        versions: dict[str, str] = {}
        return {
            "contact": contact,
            "identities": [{"account": i.account, "remote_user": i.remote_user}
                           for i in identities],
            "events": [
                {"at": e.at, "account": e.account, "list": e.list, "step": e.step,
                 "trigger": e.trigger, "text": await self.commands.version(e.text_hash, versions)}
                for e in events
            ],
        }  # fmt: skip

    def _check(self, actor: str, account: str, needed: str) -> None:
        level = self.services.level(actor, account)
        if level == "none" or (needed == "admin" and level != "admin"):
            raise ApiError(403, f"You need the {needed} permission on {account} for this.")

    async def record(self, request: ApiRequest) -> dict[str, Any]:
        body = request.body
        self._check(request.actor, body["account"], "admin")
        proof = ImportProof(
            body["consented_at"], body["version"], body["source"], request.actor,
            body.get("text"),
        )  # fmt: skip
        try:
            contact = await self.registry.import_identity(
                body["account"], body["remote_user"], body["list"], proof, body.get("chat")
            )
        except ConsentError as e:
            raise ApiError(400, str(e)) from e
        return {"contact": contact, "recorded": True}

    async def withdraw(self, request: ApiRequest) -> dict[str, Any]:
        body, actor = request.body, request.actor
        self._check(actor, body["account"], "staff")
        contact = await self.registry.contact_for(body["account"], body["remote_user"])
        if contact is None:
            raise ApiError(404, "That person has no consent records.")
        state = await self.registry.state(contact, body["list"], body["account"])
        if state.step not in GIVEN:
            return {"contact": contact, "recorded": False}
        evidence = {"by": actor, "via": "provisioning API"}
        try:
            await self.registry.withdraw(
                contact, body["list"], body["account"], evidence, f"withdrawal told by {actor}",
                f"api:{request.id}",
            )  # fmt: skip
        except ConsentError as e:
            raise ApiError(400, str(e)) from e
        return {"contact": contact, "recorded": True}


def add_operations(seams: Seams, registry: Registry, commands: ConsentCommands) -> None:
    api = ConsentApi(registry, commands, seams.services)
    seams.add_api(ApiOperation(
        "GET", "/consent/contacts/{contact}", "getConsent",
        "A contact's identities and consent history (the consent command)", "consent",
        HISTORY, api.history,
        (ApiParam("contact", "path", KEY, "A contact number, or an identity account:user"),),
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "POST", "/consent/record", "recordConsent",
        "Record a consent given elsewhere, with its proof (admins of the account)", "consent",
        RESULT, api.record,
        body={
            "type": "object",
            "required": ["account", "remote_user", "list", "consented_at", "version", "source"],
            "properties": {
                **PERSON, "chat": TEXT, "text": {**TEXT, "maxLength": 20000},
                "consented_at": {"type": "integer", "minimum": 1, "maximum": 2**53,
                                 "description": "When it was given (ms since the epoch)"},
                "version": TEXT, "source": {**TEXT, "maxLength": 500},
            },
        },
    ))  # fmt: skip
    seams.add_api(ApiOperation(
        "POST", "/consent/withdraw", "withdrawConsent",
        "Record that a person withdrew a consent (told elsewhere)", "consent", RESULT,
        api.withdraw, errors=(400, 403, 404),
        body={"type": "object", "required": list(PERSON), "properties": PERSON},
    ))  # fmt: skip
