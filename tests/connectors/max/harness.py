"""The MAX connector's remote side: the local Bot API simulator, driven as MAX.

``MaxHarness`` runs a ``MaxSimulator`` and points the connector at it in webhook mode: the
connector subscribes its route on the ``FakeHost`` (``/connectors/<account>/webhook``, served
by the host's real local HTTP server; the simulator takes plain HTTP on loopback only), and
customers' updates are POSTed there with the secret. What the bot sent is read back from the
simulator's records (``sent``, ``edits``, ``deletions``) and normalised.

MAX ids: a chat is a number (a dialog has a chat id of its own, not the user's), a user a
number, a message a ``mid.…`` string; ``remote_id`` maps the suite's labels to them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, cast

from bridge.connectors.max import MaxConnector
from bridge.types import AccountID
from tests.contract.harness import (
    ConnectorHarness,
    FailureKind,
    FakeHost,
    IdKind,
    Received,
    ReceivedAttachment,
)

from .simulator import MaxSimulator
from .simulator.updates import new_mid

SECRET = "contract-test-webhook-secret-0123456789"
FIRST_USER = 50_000_001
FIRST_CHAT = 7_000_000_000_001


class MaxHarness(ConnectorHarness):
    name = "max"
    connector_class = MaxConnector
    account_id = AccountID("support-max")

    def __init__(self, *, simulator: MaxSimulator | None = None) -> None:
        super().__init__()
        self.sim = simulator or MaxSimulator()
        self._ids: dict[tuple[str, str], str] = {}
        self._users = itertools.count(FIRST_USER)
        self._chats = itertools.count(FIRST_CHAT)

    async def start(self) -> None:
        await self.sim.start()

    async def stop(self) -> None:
        await self.sim.stop()

    # ------------------------------------------------------------------ config

    def valid_config(self) -> dict[str, Any]:
        assert self.sim.port, "the simulator is not started"
        host = self.host
        return {
            "type": "max",
            "staff": ["@admin:example.com"],
            "token": self.sim.token,
            "mode": "webhook",
            "api_url": self.sim.base_url,
            "webhook_url": host.base_url if host is not None else "http://127.0.0.1:1",
            "webhook_secret": SECRET,
            "poll_timeout": 1,
            "chat_burst": 1,
            "delivery_deadline": 600,
            "request_timeout": 10,
            "title": "Test MAX",
        }

    def invalid_configs(self) -> list[tuple[dict[str, Any], str]]:
        key = self.config_key
        valid = self.valid_config()

        def changed(**values: Any) -> dict[str, Any]:
            return {**valid, **values}

        cases = [
            ({k: v for k, v in valid.items() if k != "token"}, f"{key}.token"),
            (changed(token=""), f"{key}.token"),
            (changed(token="has spaces in it, not a token"), f"{key}.token"),
            (changed(token=12345678901234567), f"{key}.token"),
            (changed(mode="push"), f"{key}.mode"),
            (changed(webhook_url=None), f"{key}.webhook_url"),
            (changed(webhook_url="ftp://example.com"), f"{key}.webhook_url"),
            (changed(webhook_secret="short"), f"{key}.webhook_secret"),
            (changed(webhook_secret="x" * 40 + "!"), f"{key}.webhook_secret"),
            (changed(api_url="not a url"), f"{key}.api_url"),
            (changed(poll_timeout=91), f"{key}.poll_timeout"),
            (changed(poll_timeout=0), f"{key}.poll_timeout"),
            (changed(chat_burst=0), f"{key}.chat_burst"),
            (changed(chat_burst=1.5), f"{key}.chat_burst"),
            (changed(delivery_deadline=-1), f"{key}.delivery_deadline"),
            (changed(request_timeout="30s"), f"{key}.request_timeout"),
            (changed(title=""), f"{key}.title"),
            (changed(access_token="x"), f"{key}.access_token"),
        ]
        return cases

    def make_connector(self, host: FakeHost, **overrides: Any) -> MaxConnector:
        self.host = host
        return cast(MaxConnector, super().make_connector(host, **overrides))

    # ------------------------------------------------------------------ ids

    def remote_id(self, kind: IdKind, label: str) -> str:
        known = self._ids.get((kind, label))
        if known is None:
            if kind == "message":
                known = new_mid()
            elif kind == "user":
                known = str(next(self._users))
            else:
                known = str(next(self._chats))
            self._ids[(kind, label)] = known
        return known

    # ------------------------------------------------------------------ MAX -> connector

    async def redeliver(self, label: str, delivery: Any) -> None:
        """MAX delivers at least once: a duplicate is the same update again."""
        result = await self.sim.deliver(delivery)
        if result is None:
            await self.sim.wait_polled()
        elif result.status != 200:
            raise AssertionError(f"the connector refused the update: {result.answer[:300]}")

    async def remote_sends_message(
        self,
        chat_id: str,
        sender_id: str,
        text: str,
        message_id: str,
        *,
        sender_name: str | None = None,
    ) -> None:
        update = self.sim.customer_message(
            int(self.remote_id("user", sender_id)),
            sender_name or f"Customer {sender_id}",
            text,
            chat_id=int(self.remote_id("chat", chat_id)),
            mid=self.remote_id("message", message_id),
        )
        await self.deliver_message(message_id, update)

    async def remote_sends_attachment(
        self,
        chat_id: str,
        sender_id: str,
        message_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
    ) -> None:
        url = self.sim.host_file(data, mimetype)
        kind = "image" if mimetype.startswith("image/") else "file"
        attachment: dict[str, Any] = {"type": kind, "payload": {"url": url, "token": "t"}}
        if kind == "file":
            attachment.update(filename=filename, size=len(data))
        update = self.sim.customer_message(
            int(self.remote_id("user", sender_id)),
            f"Customer {sender_id}",
            None,
            chat_id=int(self.remote_id("chat", chat_id)),
            mid=self.remote_id("message", message_id),
            attachments=[attachment],
        )
        if kind == "image":  # MAX gives images no name: the harness stands for the app's
            attachment["filename"] = filename
        await self.deliver_message(message_id, update)

    async def remote_presses_button(
        self, chat_id: str, sender_id: str, message_id: str, button_id: str
    ) -> None:
        update = self.sim.press(message_id, button_id, int(self.remote_id("user", sender_id)))
        await self.redeliver(message_id, update)

    # ------------------------------------------------------------------ connector -> MAX

    async def remote_received(self) -> list[Received]:
        return list(received(self.sim))

    async def make_remote_fail(self, kind: FailureKind, count: int = 1) -> None:
        if kind == "temporary":
            self.sim.fail(count, 429, "too.many.requests")
        else:
            self.sim.fail(count, 403, "chat.denied")


def received(sim: MaxSimulator) -> Iterator[Received]:
    """What the bot sent, edited and deleted, and its chat actions (typing; ``mark_seen`` as
    a read receipt of the chat's latest customer message), in the order the simulator
    accepted them."""
    records: list[tuple[float, int, Received]] = []
    for index, sent in enumerate(sim.sent):
        attachment = None
        if sent.uploads:
            upload = sent.uploads[0]
            attachment = ReceivedAttachment(
                filename=upload.filename, mimetype=upload.content_type, data=upload.data
            )
        item = Received(
            type="message",
            id=sent.mid,
            chat_id=str(sent.chat_id),
            text=sent.plain,
            html=sent.text if sent.format == "html" else None,
            reply_to=sent.reply_to,
            attachment=attachment,
            buttons=sent.buttons,
        )
        records.append((sent.at, index, item))
    for index, edit in enumerate(sim.edits):
        item = Received(
            type="edit",
            chat_id=str(edit.chat_id),
            target=edit.mid,
            text=edit.plain,
            html=edit.text if edit.format == "html" else None,
        )
        records.append((edit.at, 10**6 + index, item))
    for index, deletion in enumerate(sim.deletions):
        item = Received(type="delete", chat_id=str(deletion.chat_id), target=deletion.mid)
        records.append((deletion.at, 2 * 10**6 + index, item))
    for index, (chat_id, action, at, seen) in enumerate(sim.actions):
        if action == "mark_seen":
            item = Received(type="read_receipt", chat_id=str(chat_id), target=seen or "")
        else:
            item = Received(type="typing", chat_id=str(chat_id), typing=True)
        records.append((at, 3 * 10**6 + index, item))
    records.sort(key=lambda record: (record[0], record[1]))
    for _, _, item in records:
        yield item
