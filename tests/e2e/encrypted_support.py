"""The customer's side of each channel for the encrypted round trip
(``test_encrypted_channels.py``): the inbox suite's channel adapters
(``tests.e2e.inbox_channels``), each extended by what a round trip needs on top of text: the
remote id of the customer's last message (what a staff reply or reaction must point at), a
file the customer sends, and what the remote side got of a staff message (its remote id and
the message it replies to), an edit, a reaction, a deletion and a file.

What each channel carries is data on the adapter (``edits``, ``reactions``, ``deletes``),
checked against the connector classes' capability protocols by the suite; where a channel
lacks one, the suite expects the core's "⚠️ Not delivered: ..." notice instead."""

from __future__ import annotations

import base64
import uuid
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from tests.connectors.telegram import updates as tg
from tests.connectors.whatsapp import payloads as wa
from tests.e2e import inbox_channels as base
from tests.e2e.inbox_channels import Customer

T = TypeVar("T")
TIMEOUT = 30.0


@dataclass(frozen=True)
class Out:
    """A staff message as the remote side got it."""

    remote_id: str
    """The id the remote side knows it by (what an edit or a deletion names)."""
    reply_to: str | None
    """The remote id of the message it answers, if the remote got it as a reply."""


class RoundTrip(base.Channel):
    """What the encrypted round trip needs of a channel beyond ``base.Channel``."""

    bridge_type: ClassVar[str]
    """The connector's ``type`` in the bridge config."""
    edits: ClassVar[bool] = False
    reactions: ClassVar[bool] = False
    deletes: ClassVar[bool] = False
    customer_ids: dict[str, str]

    def __init__(self, stack: Any) -> None:
        super().__init__(stack)
        self.customer_ids = {}

    def last_id(self, customer: Customer) -> str:
        """The remote id of the customer's last message."""
        return self.customer_ids[customer.address]

    async def _find(self, find: Callable[[], T | None], timeout: float = TIMEOUT) -> T:  # noqa: ASYNC109
        await self._changed(lambda: find() is not None, timeout)
        found = find()
        assert found is not None
        return found

    @abstractmethod
    async def writes_file(
        self, customer: Customer, data: bytes, filename: str, mimetype: str
    ) -> None:
        """The customer sends ``data`` as a file (a document, not an image)."""

    @abstractmethod
    async def staff_message(self, customer: Customer, text: str) -> Out:
        """The staff message whose text the customer reads as ``text``."""

    @abstractmethod
    async def staff_file(self, customer: Customer, filename: str) -> bytes:
        """The bytes of the file ``filename`` staff sent to the customer."""

    # Only where the channel carries them (``edits``, ``reactions``, ``deletes``):

    async def edited(self, customer: Customer, out: Out, text: str) -> None:
        """The remote message ``out`` now reads ``text``."""
        raise NotImplementedError

    async def reacted(self, customer: Customer, target: str, emoji: str) -> None:
        """The business reacted with ``emoji`` to the customer's message ``target``."""
        raise NotImplementedError

    async def deleted(self, customer: Customer, out: Out) -> None:
        """The remote message ``out`` was deleted."""
        raise NotImplementedError


class WebhookChannel(RoundTrip, base.WebhookChannel):
    bridge_type = "webhook"
    edits = reactions = deletes = True

    async def writes(self, customer: Customer, text: str, **options: Any) -> None:
        mid = uuid.uuid4().hex
        await super().writes(customer, text, mid=mid, **options)
        self.customer_ids[customer.address] = mid

    async def writes_file(
        self, customer: Customer, data: bytes, filename: str, mimetype: str
    ) -> None:
        self.stack.peer.files[filename] = (data, mimetype)
        attachment = {"url": self.stack.peer.file_url(filename), "filename": filename}
        await self.writes(customer, "", attachments=[attachment])

    def _payload(self, customer: Customer, check: Callable[[dict[str, Any]], bool]) -> Any:
        chat = customer.address
        return next(
            (p for p in self.stack.peer.received if p.get("chat_id") == chat and check(p)), None
        )

    async def staff_message(self, customer: Customer, text: str) -> Out:
        p = await self._find(lambda: self._payload(
            customer, lambda p: p.get("type") == "message" and p.get("text") == text
        ))  # fmt: skip
        return Out(f"remote-{p['id']}", p.get("reply_to"))

    async def staff_file(self, customer: Customer, filename: str) -> bytes:
        p = await self._find(lambda: self._payload(
            customer, lambda p: (p.get("attachment") or {}).get("filename") == filename
        ))  # fmt: skip
        return base64.b64decode(p["attachment"]["data_base64"])

    # Only where the channel carries them (``edits``, ``reactions``, ``deletes``):

    async def edited(self, customer: Customer, out: Out, text: str) -> None:
        await self._find(lambda: self._payload(customer, lambda p: (
            p.get("type") == "edit" and p.get("target") == out.remote_id and p.get("text") == text
        )))  # fmt: skip

    async def reacted(self, customer: Customer, target: str, emoji: str) -> None:
        await self._find(lambda: self._payload(customer, lambda p: (
            p.get("type") == "reaction" and p.get("target") == target and p.get("emoji") == emoji
        )))  # fmt: skip

    async def deleted(self, customer: Customer, out: Out) -> None:
        await self._find(lambda: self._payload(
            customer, lambda p: p.get("type") == "delete" and p.get("target") == out.remote_id
        ))  # fmt: skip


class TelegramChannel(RoundTrip, base.TelegramChannel):
    bridge_type = "telegram"
    edits = reactions = deletes = True

    async def _push(self, customer: Customer, message: dict[str, Any]) -> None:
        sim = self.stack.telegram
        update = sim.push_update(tg.message_update(message))
        await sim.wait_for_confirmed(update["update_id"], timeout=TIMEOUT)
        self.customer_ids[customer.address] = str(message["message_id"])

    async def writes(self, customer: Customer, text: str, **options: Any) -> None:
        user, chat = self._chat(customer)
        await self._push(customer, tg.text_message(chat, user, text, **options))

    async def writes_file(
        self, customer: Customer, data: bytes, filename: str, mimetype: str
    ) -> None:
        user, chat = self._chat(customer)
        doc = self.stack.telegram.add_file(
            data, kind="document", file_name=filename, mime_type=mimetype
        )
        await self._push(customer, tg.document_message(
            chat, user, doc.ref(), file_name=filename, mime_type=mimetype
        ))  # fmt: skip

    def _first(self, records: list[Any], customer: Customer, check: Callable[[Any], bool]) -> Any:
        chat = int(customer.address)
        return next((r for r in records if r.chat_id == chat and check(r)), None)

    async def staff_message(self, customer: Customer, text: str) -> Out:
        sim = self.stack.telegram
        sent = await self._find(
            lambda: self._first(sim.sent, customer, lambda r: r.rendered == text)
        )
        reply_to = None if sent.reply_to is None else str(sent.reply_to)
        return Out(str(sent.message_id), reply_to)

    async def staff_file(self, customer: Customer, filename: str) -> bytes:
        sent = await self._find(lambda: self._first(
            self.stack.telegram.sent, customer, lambda r: r.filename == filename
        ))  # fmt: skip
        return bytes(sent.data)

    # Only where the channel carries them (``edits``, ``reactions``, ``deletes``):

    async def edited(self, customer: Customer, out: Out, text: str) -> None:
        await self._find(lambda: self._first(self.stack.telegram.edits, customer, lambda r: (
            str(r.message_id) == out.remote_id and r.rendered == text
        )))  # fmt: skip

    async def reacted(self, customer: Customer, target: str, emoji: str) -> None:
        await self._find(lambda: self._first(self.stack.telegram.reactions, customer, lambda r: (
            str(r.message_id) == target and r.emojis == [emoji]
        )))  # fmt: skip

    async def deleted(self, customer: Customer, out: Out) -> None:
        await self._find(lambda: self._first(
            self.stack.telegram.deletions, customer, lambda r: str(r.message_id) == out.remote_id
        ))  # fmt: skip


class WhatsAppChannel(RoundTrip, base.WhatsAppChannel):
    bridge_type = "whatsapp"
    reactions = True

    async def _receive(self, customer: Customer, message: dict[str, Any]) -> None:
        names = {customer.address: customer.name}
        delivery = await self.stack.whatsapp.receive(message, names=names)
        assert delivery.ok, delivery
        self.customer_ids[customer.address] = str(message["id"])

    async def writes(self, customer: Customer, text: str, **options: Any) -> None:
        await self._receive(customer, wa.text_message(customer.address, text, **options))

    async def writes_file(
        self, customer: Customer, data: bytes, filename: str, mimetype: str
    ) -> None:
        message = self.stack.whatsapp.media_message(
            "document", customer.address, data, mimetype, filename=filename
        )
        await self._receive(customer, message)

    def _sent(self, customer: Customer, check: Callable[[Any], bool]) -> Any:
        sent = self.stack.whatsapp.sent
        return next((s for s in sent if s.wa_id == customer.address and check(s)), None)

    async def staff_message(self, customer: Customer, text: str) -> Out:
        sent = await self._find(lambda: self._sent(customer, lambda s: s.text == text))
        return Out(sent.wamid, sent.context_id)

    async def staff_file(self, customer: Customer, filename: str) -> bytes:
        sent = await self._find(lambda: self._sent(customer, lambda s: (
            s.type == "document" and s.content.get("filename") == filename
        )))  # fmt: skip
        assert sent.media_bytes is not None
        return bytes(sent.media_bytes)

    async def reacted(self, customer: Customer, target: str, emoji: str) -> None:
        await self._find(lambda: self._sent(customer, lambda s: (
            s.type == "reaction" and s.content == {"message_id": target, "emoji": emoji}
        )))  # fmt: skip


class EmailChannel(RoundTrip, base.EmailChannel):
    bridge_type = "email"

    async def writes(self, customer: Customer, text: str, **options: Any) -> None:
        await super().writes(customer, text, **options)
        self.customer_ids[customer.address] = customer.thread[-1]

    async def writes_file(
        self, customer: Customer, data: bytes, filename: str, mimetype: str
    ) -> None:
        await self.writes(customer, "A file for you", attachment=(data, mimetype, filename))

    def _mail(self, customer: Customer, check: Callable[[Any], bool]) -> Any:
        messages = self.stack.smtp.messages
        return next((m for m in messages if m.rcpt_tos == [customer.address] and check(m)), None)

    async def staff_message(self, customer: Customer, text: str) -> Out:
        def says(captured: Any) -> bool:
            body = captured.message.get_body(("plain",))
            return body is not None and body.get_content().strip() == text

        captured = await self._find(lambda: self._mail(customer, says))
        message = captured.message
        return Out(str(message["Message-ID"]), message.get("In-Reply-To"))

    async def staff_file(self, customer: Customer, filename: str) -> bytes:
        def part(captured: Any) -> Any:
            parts = captured.message.iter_attachments()
            return next((p for p in parts if p.get_filename() == filename), None)

        captured = await self._find(lambda: self._mail(customer, lambda m: part(m) is not None))
        return bytes(part(captured).get_content())


CHANNELS: list[type[RoundTrip]] = [WebhookChannel, TelegramChannel, WhatsAppChannel, EmailChannel]

__all__ = ["CHANNELS", "Customer", "Out", "RoundTrip"]
