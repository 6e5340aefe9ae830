"""The VK connector's remote side: the local VK API simulator, driven as VK.

``VKHarness`` runs a ``VKSimulator`` and points the connector at it (``base_url``); in
callback mode the simulator posts its events, with the secret, to the route the connector adds
on the ``FakeHost``; in long poll mode the connector fetches them. Customers write through the
simulator's customer side; what the community sent is read back from ``sim.actions``.

VK ids are numbers: a private conversation's ``peer_id`` is its person's user id, so the chat
and the customer that first talk together share one number; a message is known by
``<peer_id>_<conversation_message_id>``. A community may write only to people who wrote to it or
allowed its messages; the suite sends to chats whose customer never wrote in the test, so every
customer the harness names has allowed the community's messages (as after an earlier talk).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any, cast

from bridge.connectors.vk import VKConnector
from bridge.connectors.vk.connector import CALLBACK_PATH
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

from .simulator import VKSimulator

ACCESS_TOKEN = "vk1.a.contract-test-community-token"
GROUP_ID = 218_765_432
SECRET = "contractsecret42"
CONFIRMATION = "a1b2c3d4"
FIRST_USER = 700_000_001
NO_PERMISSION = 901
INTERNAL = 10


class VKHarness(ConnectorHarness):
    name = "vk"
    connector_class = VKConnector

    def __init__(self, *, mode: str = "callback", simulator: VKSimulator | None = None) -> None:
        super().__init__()
        self.sim = simulator or VKSimulator(
            ACCESS_TOKEN, GROUP_ID, secret=SECRET, confirmation_code=CONFIRMATION
        )
        self.sim.mode = mode
        self.mode = mode
        self._ids: dict[tuple[str, str], Any] = {}
        self._users = itertools.count(FIRST_USER)
        self._spare = itertools.count(1)
        self.blockade = Blockade(
            lambda: sum(1 for r in self.sim.rejected if r.code == NO_PERMISSION),
            self._block_all,
            self.sim.wait_for,
        )

    async def start(self) -> None:
        await self.sim.start()

    async def stop(self) -> None:
        await self.blockade.close()
        await self.sim.stop()

    # ------------------------------------------------------------------ config

    def valid_config(self) -> dict[str, Any]:
        return {
            "type": "vk",
            "staff": ["@admin:example.com"],
            "group_id": self.sim.group_id,
            "access_token": self.sim.access_token,
            "mode": self.mode,
            "confirmation_code": CONFIRMATION,
            "secret": SECRET,
            "api_version": "5.199",
            "base_url": self.sim.base_url,
            "poll_wait": 1,
            "delivery_deadline": 600,
            "request_timeout": 10,
            "title": "Test VK",
        }

    def invalid_configs(self) -> list[tuple[dict[str, Any], str]]:
        key = self.config_key
        valid = self.valid_config()

        def changed(**values: Any) -> dict[str, Any]:
            return {**valid, **values}

        def without(name: str) -> dict[str, Any]:
            return {k: v for k, v in valid.items() if k != name}

        cases: list[tuple[dict[str, Any], str]] = [
            (without("group_id"), f"{key}.group_id"),
            (changed(group_id=-GROUP_ID), f"{key}.group_id"),
            (changed(group_id="club218765432"), f"{key}.group_id"),
            (changed(group_id=True), f"{key}.group_id"),
            (changed(group_id=1.5), f"{key}.group_id"),
            (changed(group_id=10**13), f"{key}.group_id"),
            (without("access_token"), f"{key}.access_token"),
            (changed(access_token=""), f"{key}.access_token"),
            (changed(access_token=123), f"{key}.access_token"),
            (changed(mode="webhook"), f"{key}.mode"),
            (without("confirmation_code"), f"{key}.confirmation_code"),
            (without("secret"), f"{key}.secret"),
            (changed(secret="with space"), f"{key}.secret"),
            (changed(secret="x" * 51), f"{key}.secret"),
            (changed(api_version="v5.199"), f"{key}.api_version"),
            (changed(api_version=5.199), f"{key}.api_version"),
            (changed(base_url="ftp://api.vk.com"), f"{key}.base_url"),
            (changed(base_url="not a url"), f"{key}.base_url"),
            (changed(poll_wait=0), f"{key}.poll_wait"),
            (changed(poll_wait=91), f"{key}.poll_wait"),
            (changed(delivery_deadline=-1), f"{key}.delivery_deadline"),
            (changed(request_timeout="5s"), f"{key}.request_timeout"),
            (changed(title=""), f"{key}.title"),
            (changed(screen_name="has space"), f"{key}.screen_name"),
            (changed(token=ACCESS_TOKEN), f"{key}.token"),
        ]
        return cases

    def make_connector(self, host: FakeHost, **overrides: Any) -> VKConnector:
        if host.base_url:
            self.sim.callback_url = f"{host.base_url}/connectors/{self.account_id}{CALLBACK_PATH}"
        return cast(VKConnector, super().make_connector(host, **overrides))

    # ------------------------------------------------------------------ ids

    def remote_id(self, kind: IdKind, label: str) -> str:
        known = self._ids.get((kind, label))
        if known is None:
            if kind == "message":
                known = f"{FIRST_USER - 1}_{next(self._spare)}"
            else:
                known = self._new_user()
            self._ids[(kind, label)] = known
        return str(known)

    def _new_user(self) -> int:
        user = next(self._users)
        self.sim.name(user, "Customer", str(user))
        if not self.blockade.active:
            self.sim.allow(user)
        return user

    def _pair(self, chat: str, sender: str) -> int:
        return one_id_for_chat_and_user(
            self._ids,
            chat,
            sender,
            self._new_user,
            "a VK private conversation is its person's user id",
        )

    # ------------------------------------------------------------------ VK -> connector

    async def _customer(self, chat_id: str, sender_id: str, sender_name: str | None) -> int:
        user = self._pair(chat_id, sender_id)
        first, _, last = (sender_name or f"Customer {sender_id}").partition(" ")
        self.sim.name(user, first, last)
        return user

    async def remote_sends_message(
        self,
        chat_id: str,
        sender_id: str,
        text: str,
        message_id: str,
        *,
        sender_name: str | None = None,
    ) -> None:
        user = await self._customer(chat_id, sender_id, sender_name)
        await self._send(message_id, self.sim.message(user, text))

    async def remote_sends_attachment(
        self,
        chat_id: str,
        sender_id: str,
        message_id: str,
        data: bytes,
        filename: str,
        mimetype: str,
    ) -> None:
        user = await self._customer(chat_id, sender_id, None)
        if mimetype == "image/jpeg":
            attachment = self.sim.photo(data)
        else:
            attachment = self.sim.doc(data, filename, mimetype)
        await self._send(message_id, self.sim.message(user, "", attachments=[attachment]))

    async def _send(self, label: str, event: dict[str, Any]) -> None:
        message = event["object"]["message"]
        known = f"{message['peer_id']}_{message['conversation_message_id']}"
        self._ids.setdefault(("message", label), known)
        await self.deliver_message(label, event)

    async def remote_presses_button(
        self, chat_id: str, sender_id: str, message_id: str, button_id: str
    ) -> None:
        user = self._pair(chat_id, sender_id)
        peer, _, cmid = message_id.partition("_")
        sent = self.sim.find_sent(int(peer), int(cmid))
        assert sent is not None, message_id
        label = next(t for t, p in sent.buttons if json.loads(p).get("b") == button_id)
        await self.redeliver(message_id, self.sim.press(user, int(peer), int(cmid), label))

    async def redeliver(self, label: str, delivery: Any) -> None:
        """VK delivers at least once: a repeat is the same event again."""
        if self.mode == "longpoll":
            await self.sim.deliver(delivery)
            return
        result = await self.sim.post_callback(delivery)
        if not result.ok:
            answers = [(a.status, a.error or a.answer[:200]) for a in result.attempts]
            raise AssertionError(f"the connector refused the event: {answers}")

    # ------------------------------------------------------------------ connector -> VK

    async def remote_received(self) -> list[Received]:
        return list(received(self.sim))

    async def make_remote_fail(self, kind: FailureKind, count: int = 1) -> None:
        if kind == "temporary":
            self.sim.storm(count, INTERNAL)
            return
        self.blockade.start(count)

    def _block_all(self, blocked: bool) -> None:
        for (kind, _), value in list(self._ids.items()):
            if kind != "message":
                self.sim.allow(int(value), not blocked)


def received(sim: VKSimulator) -> Iterator[Received]:
    """What the community did, in order, in the contract suite's form."""
    for action, message, text in sim.actions:
        ident = f"{message.peer_id}_{message.cmid}"
        if action == "edit":
            yield Received(type="edit", chat_id=str(message.peer_id), target=ident, text=text)
        elif action == "delete":
            yield Received(type="delete", chat_id=str(message.peer_id), target=ident)
        else:
            attachment = None
            if message.files:
                file = message.files[0]
                attachment = ReceivedAttachment(
                    filename=file.filename, mimetype=file.mimetype, data=file.data
                )
            reply = f"{message.peer_id}_{message.reply_to}" if message.reply_to else None
            yield Received(
                type="message",
                id=ident,
                chat_id=str(message.peer_id),
                text=text,
                html=None,
                reply_to=reply,
                attachment=attachment,
                buttons=[(json.loads(p)["b"], t) for t, p in message.buttons],
            )


class VKLongPollHarness(VKHarness):
    """The same community, its events fetched with the Bots Long Poll API."""

    name = "vk-longpoll"

    def __init__(self, *, simulator: VKSimulator | None = None) -> None:
        super().__init__(mode="longpoll", simulator=simulator)
