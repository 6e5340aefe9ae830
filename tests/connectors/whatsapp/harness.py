"""The WhatsApp connector's remote side: the local Cloud API simulator, driven as Meta.

``WhatsAppHarness`` runs a ``WhatsAppSimulator`` and points the connector at it: the Graph API
base URL is the simulator's, and the simulator posts its signed ``messages`` webhooks to the
route the connector adds on the ``FakeHost`` (``/connectors/<account>/webhook``, served by the
host's real local HTTP server). Customers write through ``sim.receive``; what the business sent
is read back from the simulator's records (``sent``, ``read_receipts``) and normalised.

WhatsApp ids have their own shapes: a conversation is one customer, and the chat id is the
customer's ``wa_id`` (the phone number, digits only); messages are ``wamid.…`` ids. So
``remote_id`` maps the suite's labels: the chat and the customer that first talk together share
one number, messages get wamids.

Free-form messages may only be sent within 24 hours of the customer's last message, and both
the simulator (error 131047) and the connector (from its own memory or the host's portal
metadata, ``last_inbound_at``) enforce that. The contract suite sends to chats whose customer
never wrote in the test (and must find ``host.events`` empty or holding exactly what the test
delivered), so the harness stands for a conversation the core recorded earlier: each customer it
names last wrote an hour before the test, as far as the simulator is concerned
(``sim.open_window``) and as far as the host's stored portal metadata goes (a recent
``last_inbound_at``, which a core would have kept from that message). Metadata from events
recorded during the test always takes precedence. Tests that want only what really happened
construct the harness with ``earlier_conversations=False``.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator
from typing import Any, cast

import aiohttp

from bridge.connectors.whatsapp import WhatsAppConnector
from bridge.connectors.whatsapp.connector import WEBHOOK_PATH
from bridge.types import AccountID, RemoteChatID
from tests.contract.harness import (
    Blockade,
    ConnectorHarness,
    FailureKind,
    FakeHost,
    IdKind,
    Received,
    ReceivedAttachment,
    one_id_for_chat_and_user,
)

from . import payloads as wa
from .simulator import ReadReceipt, SentMessage, WhatsAppSimulator

ACCESS_TOKEN = "EAAG-contract-test-access-token"
APP_SECRET = "contract-test-app-secret"
VERIFY_TOKEN = "contract-test-verify-token"
PHONE_NUMBER_ID = "109876543210987"
DISPLAY_NUMBER = "15550001234"
WABA_ID = "104455667788990"
FIRST_NUMBER = 491_510_000_001
"""Customers' numbers (wa_ids) are handed out from here: +49 151 0000001, ..."""
EARLIER = 3600.0
"""How long before the test the customers the harness names last wrote (well inside 24 h)."""
UNDELIVERABLE = 131026


class WhatsAppHarness(ConnectorHarness):
    name = "whatsapp"
    connector_class = WhatsAppConnector
    account_id = AccountID("support-whatsapp")

    def __init__(
        self,
        *,
        earlier_conversations: bool = True,
        simulator: WhatsAppSimulator | None = None,
    ) -> None:
        super().__init__()
        self.sim = simulator or WhatsAppSimulator(
            ACCESS_TOKEN,
            phone_number_id=PHONE_NUMBER_ID,
            display_phone_number=DISPLAY_NUMBER,
            waba_id=WABA_ID,
            app_secret=APP_SECRET,
            verify_token=VERIFY_TOKEN,
            webhook_retry_delay=0.02,
        )
        self.earlier_conversations = earlier_conversations
        self.session: aiohttp.ClientSession | None = None
        self._ids: dict[tuple[str, str], str] = {}
        self._numbers = itertools.count(FIRST_NUMBER)
        self._earlier: dict[str, float] = {}
        """wa_id -> when that customer last wrote before the test (see the module doc)."""
        self._wrapped: set[int] = set()
        self.blockade = Blockade(
            lambda: _undeliverable_refusals(self.sim), self._block_all, self.sim.wait_for
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.sim.start()
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self.blockade.close()
        if self.session is not None:
            await self.session.close()
        await self.sim.stop()

    # ------------------------------------------------------------------ config

    def valid_config(self) -> dict[str, Any]:
        return {
            "type": "whatsapp",
            "staff": ["@admin:example.com"],
            "phone_number_id": self.sim.phone_number_id,
            "business_account_id": self.sim.waba_id,
            "access_token": self.sim.access_token,
            "app_secret": self.sim.app_secret,
            "verify_token": self.sim.verify_token,
            "api_version": "v21.0",
            "base_url": self.sim.base_url,
            "reorder_window": 0.05,
            "template_cache": 300,
            "pair_burst": 5,
            "delivery_deadline": 600,
            "request_timeout": 10,
            "title": "Test WhatsApp",
        }

    def invalid_configs(self) -> list[tuple[dict[str, Any], str]]:
        key = self.config_key
        valid = self.valid_config()

        def changed(**values: Any) -> dict[str, Any]:
            return {**valid, **values}

        def without(name: str) -> dict[str, Any]:
            return {k: v for k, v in valid.items() if k != name}

        cases: list[tuple[dict[str, Any], str]] = []
        for name in ("phone_number_id", "business_account_id"):
            cases += [
                (without(name), f"{key}.{name}"),
                (changed(**{name: None}), f"{key}.{name}"),
                (changed(**{name: "abc123456"}), f"{key}.{name}"),
                (changed(**{name: "1234"}), f"{key}.{name}"),  # too short for a Meta id
                (changed(**{name: "1" * 21}), f"{key}.{name}"),
                (changed(**{name: 10**25}), f"{key}.{name}"),
                (changed(**{name: "10654 0352242922"}), f"{key}.{name}"),
                (changed(**{name: "+15550001234"}), f"{key}.{name}"),  # the number, not its id
                (changed(**{name: 1.06e14}), f"{key}.{name}"),
                (changed(**{name: True}), f"{key}.{name}"),
                (changed(**{name: ["106540352242922"]}), f"{key}.{name}"),
            ]
        for name in ("access_token", "app_secret", "verify_token"):
            cases += [
                (without(name), f"{key}.{name}"),
                (changed(**{name: ""}), f"{key}.{name}"),
                (changed(**{name: 12345}), f"{key}.{name}"),
                (changed(**{name: ["secret"]}), f"{key}.{name}"),
                (changed(**{name: False}), f"{key}.{name}"),
            ]
        cases += [
            (changed(api_version="21.0"), f"{key}.api_version"),
            (changed(api_version="v21"), f"{key}.api_version"),
            (changed(api_version="latest"), f"{key}.api_version"),
            (changed(api_version="v21.0/"), f"{key}.api_version"),
            (changed(api_version=21.0), f"{key}.api_version"),
            (changed(api_version=""), f"{key}.api_version"),
            (changed(base_url="not a url"), f"{key}.base_url"),
            (changed(base_url="ftp://graph.facebook.com"), f"{key}.base_url"),
            (changed(base_url="https://"), f"{key}.base_url"),
            (changed(base_url=443), f"{key}.base_url"),
            (changed(base_url=""), f"{key}.base_url"),
        ]
        for number in ("0170 1234567", "+0170 1234567", "+49", "49170", 491701234567, "+1" * 9):
            cases.append((changed(display_number=number), f"{key}.display_number"))
        for name in ("reorder_window", "template_cache", "delivery_deadline", "request_timeout"):
            cases += [
                (changed(**{name: 0}), f"{key}.{name}"),
                (changed(**{name: -1}), f"{key}.{name}"),
                (changed(**{name: "5s"}), f"{key}.{name}"),
                (changed(**{name: True}), f"{key}.{name}"),
                (changed(**{name: float("nan")}), f"{key}.{name}"),
                (changed(**{name: float("inf")}), f"{key}.{name}"),
                (changed(**{name: [1]}), f"{key}.{name}"),
            ]
        cases += [
            (changed(pair_burst=0), f"{key}.pair_burst"),
            (changed(pair_burst=-5), f"{key}.pair_burst"),
            (changed(pair_burst=2.5), f"{key}.pair_burst"),
            (changed(pair_burst="5"), f"{key}.pair_burst"),
            (changed(pair_burst=True), f"{key}.pair_burst"),
            (changed(title=""), f"{key}.title"),
            (changed(title=42), f"{key}.title"),
            (changed(title=["WhatsApp"]), f"{key}.title"),
            (changed(phone_number="+15550001234"), f"{key}.phone_number"),
            (changed(acces_token=ACCESS_TOKEN), f"{key}.acces_token"),
            (changed(webhook_path="/wa"), f"{key}.webhook_path"),
        ]
        return cases

    def make_connector(self, host: FakeHost, **overrides: Any) -> WhatsAppConnector:
        """A connector for ``host`` (not started); the simulator's webhook points at the route
        it will add there."""
        self.sim.configure_webhook(self.webhook_url(host))
        if self.earlier_conversations:
            self._remember_earlier_conversations(host)
        return cast(WhatsAppConnector, super().make_connector(host, **overrides))

    def webhook_url(self, host: FakeHost | None = None) -> str:
        host = host or self.host
        assert host is not None and host.base_url, "the FakeHost is not started"
        return f"{host.base_url}/connectors/{self.account_id}{WEBHOOK_PATH}"

    def _remember_earlier_conversations(self, host: FakeHost) -> None:
        """The host's stored portal metadata of the customers the harness names carries the
        time of their earlier message, as a core keeps it; what the test records wins."""
        if id(host) in self._wrapped:
            return
        self._wrapped.add(id(host))
        recorded = host.portal_metadata
        earlier = self._earlier

        async def portal_metadata(chat: RemoteChatID) -> dict[str, Any]:
            stored = await recorded(chat)
            if chat in earlier and "last_inbound_at" not in stored:
                return {**stored, "last_inbound_at": earlier[chat]}
            return stored

        host.portal_metadata = portal_metadata  # type: ignore[method-assign]

    # ------------------------------------------------------------------ ids

    def remote_id(self, kind: IdKind, label: str) -> str:
        known = self._ids.get((kind, label))
        if known is not None:
            return known
        if kind == "message":
            value = wa.new_wamid()
        else:
            value = self._new_customer()
        self._ids[(kind, label)] = value
        return value

    def _new_customer(self) -> str:
        wa_id = str(next(self._numbers))
        if self.earlier_conversations:
            at = time.time() - EARLIER
            self._earlier[wa_id] = at
            self.sim.open_window(wa_id, at=at)
        if self.blockade.active:
            self.sim.set_undeliverable(wa_id, "sync")
        return wa_id

    def _pair(self, chat: str, sender: str) -> str:
        """The wa_id of the conversation ``chat`` with the customer ``sender``: one number."""
        return one_id_for_chat_and_user(
            self._ids,
            chat,
            sender,
            lambda: self.remote_id("user", sender),
            "a WhatsApp conversation is its customer's number",
        )

    def _wamid(self, label: str, wa_id: str) -> str:
        known = self._ids.get(("message", label))
        if known is None:
            known = self._ids[("message", label)] = wa.new_wamid(wa_id)
        return known

    # ------------------------------------------------------------------ WhatsApp -> connector

    async def deliver(self, payload: dict[str, Any], **send_kw: Any) -> None:
        """Post ``payload`` as Meta does (signed, retried after non-2xx); raise unless the
        connector finally answered 2xx."""
        delivery = await self.sim.send_webhook(payload, **send_kw)
        if not delivery.ok:
            answers = [(a.status, a.error or a.answer[:200]) for a in delivery.attempts]
            raise AssertionError(f"the connector refused the webhook: {answers}")

    async def remote_sends_message(
        self,
        chat_id: str,
        sender_id: str,
        text: str,
        message_id: str,
        *,
        sender_name: str | None = None,
    ) -> None:
        wa_id = self._pair(chat_id, sender_id)
        message = wa.text_message(wa_id, text, wamid=self._wamid(message_id, wa_id))
        names = {wa_id: sender_name or f"Customer {sender_id}"}
        await self.deliver_message(message_id, self.sim.messages_payload(message, names=names))

    async def remote_presses_button(
        self, chat_id: str, sender_id: str, message_id: str, button_id: str
    ) -> None:
        self._pair(chat_id, sender_id)
        delivery = await self.sim.press_button(message_id, button_id)
        assert delivery.ok, [(a.status, a.error) for a in delivery.attempts]

    async def remote_sends_attachment(
        self,
        chat_id: str,
        sender_id: str,
        message_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
    ) -> None:
        wa_id = self._pair(chat_id, sender_id)
        kind = wa.kind_for_mime(mimetype) or "document"
        message = self.sim.media_message(
            kind,
            wa_id,
            data,
            mimetype,
            # Only documents carry their file name in Cloud API webhooks.
            filename=filename if kind == "document" else None,
            wamid=self._wamid(message_id, wa_id),
        )
        names = {wa_id: f"Customer {sender_id}"}
        await self.deliver_message(message_id, self.sim.messages_payload(message, names=names))

    async def redeliver(self, label: str, delivery: Any) -> None:
        """Meta delivers at least once: a duplicate is the very same webhook body again."""
        await self.deliver(delivery)

    async def post_raw(
        self,
        body: bytes,
        *,
        signature: str | None = "valid",
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> tuple[int, str]:
        """POST ``body`` to the webhook as is, signed with the app secret (``"valid"``), with
        the given header value, or unsigned (None); returns the status and the answer."""
        assert self.session is not None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if signature == "valid":
            signature = wa.signature(body, self.sim.app_secret)
        if signature is not None:
            all_headers["X-Hub-Signature-256"] = signature
        async with self.session.post(
            self.webhook_url(),
            # Large bodies as a stream: aiohttp warns about big raw bytes (a ResourceWarning).
            data=io.BytesIO(body) if len(body) > 512 * 1024 else body,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            return resp.status, await resp.text()

    # ------------------------------------------------------------------ connector -> WhatsApp

    async def remote_received(self) -> list[Received]:
        return list(received(self.sim))

    async def make_remote_fail(self, kind: FailureKind, count: int = 1) -> None:
        if kind == "temporary":
            # Throughput limit reached (130429): the connector is told to retry in a second.
            self.sim.storm(count, 130429)
            return
        # Every customer (also those the suite names later) is unreachable on WhatsApp (131026,
        # answered at once) until ``count`` sends were refused.
        self.blockade.start(count)

    def _block_all(self, blocked: bool) -> None:
        for wa_id in set(self._ids.values()):
            if not wa_id.startswith("wamid."):
                self.sim.set_undeliverable(wa_id, "sync" if blocked else "")


def _undeliverable_refusals(sim: WhatsAppSimulator) -> int:
    return sum(1 for r in sim.rejected if r.code == UNDELIVERABLE)


# --------------------------------------------------------------------------- normalising


def received(sim: WhatsAppSimulator) -> Iterator[Received]:
    """What the business sent, in the contract suite's connector-neutral form and in the order
    the simulator accepted it: messages (text, media with their bytes, templates and the other
    types), reactions (WhatsApp replaces a reaction; an empty emoji removes it, normalised to a
    removal of the emoji it replaced) and read receipts."""
    records: list[SentMessage | ReadReceipt] = [*sim.sent, *sim.read_receipts]
    records.sort(key=lambda r: r.at)  # stable: equal times keep sends first
    reactions: dict[tuple[str, str], str] = {}
    for record in records:
        if isinstance(record, ReadReceipt):
            inbound = sim.inbound.get(record.message_id)
            yield Received(
                type="read_receipt",
                chat_id=inbound.wa_id if inbound is not None else "",
                target=record.message_id,
            )
        elif record.type == "reaction":
            target = str(record.content.get("message_id"))
            emoji = str(record.content.get("emoji") or "")
            key = (record.wa_id, target)
            before = reactions.pop(key, "")
            if before and before != emoji:
                yield Received(
                    type="reaction_remove", chat_id=record.wa_id, target=target, emoji=before
                )
            if emoji:
                reactions[key] = emoji
                yield Received(type="reaction", chat_id=record.wa_id, target=target, emoji=emoji)
            elif not before:
                yield Received(
                    type="reaction_remove", chat_id=record.wa_id, target=target, emoji=""
                )
        else:
            yield _message(record)


def _message(record: SentMessage) -> Received:
    attachment = None
    if record.media is not None:
        filename = record.content.get("filename") or record.media.filename
        attachment = ReceivedAttachment(
            filename=str(filename) if filename else None,
            mimetype=wa.base_mime(record.media.mime_type),
            data=record.media.data,
        )
    return Received(
        type="message",
        id=record.wamid,
        chat_id=record.wa_id,
        text=record.text,
        html=None,
        reply_to=record.context_id,
        attachment=attachment,
        buttons=record.buttons,
    )
