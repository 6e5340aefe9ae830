"""POST /{phone-number-id}/messages: sends, templates and read receipts."""

from __future__ import annotations

from aiohttp import web

from .. import payloads as wa
from ..payloads import PRODUCT, SUPPORTED_MIME, ApiError, Json, Template
from ..payloads import param_error as _param
from .http import HttpEdge
from .limits import Throughput
from .records import ReadReceipt, SentMessage
from .webhooks import Webhooks

UNAVAILABLE_TEMPLATE = frozenset({"PENDING", "REJECTED", "IN_APPEAL", "PENDING_DELETION"})


class MessageEndpoint(HttpEdge, Webhooks, Throughput):
    """POST /{phone-number-id}/messages: checks, limits, the record of the send, statuses."""

    async def _messages(self, request: web.Request) -> Json:
        self._check_phone(request)
        body = await self._json(request)
        if body.get("messaging_product") != PRODUCT:
            raise _param("The parameter messaging_product is required and must be whatsapp.")
        if "status" in body:
            return self._mark_read(body)
        failure = self._storm.pop(0) if self._storm else None
        if failure is not None:
            code, status = failure
            raise ApiError(code, status=status)
        type_, wa_id, content = wa.check_message(
            body, text_length=self.limits.text_length, caption_length=self.limits.caption_length
        )
        media, template, rendered = None, None, None
        if type_ in SUPPORTED_MIME and "id" in content:
            media = self._media.get(str(content["id"]))
            if media is None or media.deleted:
                raise ApiError(131009, details=f"Param {type_}['id'] is not a valid media id.")
        elif type_ == "template":
            template, rendered = self._check_template(content)
        self._check_throughput()
        if self._undeliverable.get(wa_id) == "sync":
            raise ApiError(131026)
        if type_ != "template" and not self.window_open(wa_id):
            raise ApiError(131047)
        self._check_pair(wa_id)

        sent = SentMessage(
            wa.new_wamid(wa_id), self.phone_number_id, str(body["to"]), wa_id, type_, body,
            self.clock.now(), media, template, rendered,
        )  # fmt: skip
        self.sent.append(sent)
        self._notify()
        if self._undeliverable.get(wa_id) == "webhook" and self.webhook_url:
            self._spawn(self.emit_statuses(sent.wamid, ["failed"]))
        elif self.auto_statuses and self.webhook_url:
            statuses = ["sent"] if type_ == "reaction" else list(self.auto_statuses)
            self._spawn(self.emit_statuses(sent.wamid, statuses))
        message: Json = {"id": sent.wamid}
        if type_ == "template":
            message["message_status"] = "accepted"
        return {
            "messaging_product": PRODUCT,
            "contacts": [{"input": sent.to, "wa_id": wa_id}],
            "messages": [message],
        }

    def _mark_read(self, body: Json) -> Json:
        if body.get("status") != "read":
            raise _param("Param status must be read.")
        message_id = body.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise _param("The parameter message_id is required.")
        if message_id not in self.inbound:
            raise _param(f"Invalid message_id: {message_id}")
        typing = isinstance(body.get("typing_indicator"), dict)
        self.read_receipts.append(ReadReceipt(message_id, typing, body, self.clock.now()))
        self._notify()
        return {"success": True}

    def _check_template(self, content: Json) -> tuple[Template, str]:
        name, code = content["name"], content["language"]["code"]
        template = self.template(name, code)
        if template is None or template.status in UNAVAILABLE_TEMPLATE:
            raise ApiError(132001, details=f"template name ({name}) does not exist in {code}")
        if template.status == "PAUSED":
            raise ApiError(132015)
        if template.status == "DISABLED":
            raise ApiError(132016)
        return template, wa.check_template_params(template, content)
