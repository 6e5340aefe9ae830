"""The demo's VK: a local VK API server with the company's community, and a VK user writing to
that community.

    python demo/vk_customer.py serve                     # started by scripts/demo.sh
    python demo/vk_customer.py send "Здравствуйте"       # write to the community as a VK user
    python demo/vk_customer.py send "Hi" --user-id 1000002 --name "Olga Smirnova"
    python demo/vk_customer.py send "The receipt" --file receipt.jpg

``serve`` runs the test suite's VK API simulator (``tests/connectors/vk/simulator/``) on
DEMO_VK_PORT (8094). The bridge's ``demo-vk`` account talks to it as it would to api.vk.com:
it answers with ``messages.send`` (its ``random_id`` derived from the Matrix event, so a repeat
is dropped), ``messages.edit``, ``messages.delete`` and the upload methods. The customers'
messages go the other way as the Callback API does it: the simulator first sends VK's
``confirmation`` request (the bridge is counted as connected once it answers with the
community's confirmation code), then posts each event with the community's secret key to
``/connectors/demo-vk/callback`` and repeats it (``X-Retry-Counter``) until the bridge answers
``ok``. The same port serves a page for people (write as a VK user, see the community's answers
and press the buttons under them) and the control API that the page and ``send`` use.

The conversation is kept in ``demo-data/vk-messages.jsonl`` (and files in
``demo-data/vk-files/``); after a restart the simulator knows again who wrote (the community
may write back to them) and goes on counting each chat's message ids, but the community cannot
edit or delete what it sent before the restart.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import page
from common import (
    DATA,
    VK_COMMUNITY_NAME,
    JsonLines,
    joined,
    load_state,
    short,
    vk_callback_url,
    vk_url,
)
from page import CustomerPage, Refused, json_answer, render
from vk_page import PAGE

MESSAGES = DATA / "vk-messages.jsonl"
FILES = DATA / "vk-files"
DEFAULT_USER_ID = 1000001
DEFAULT_NAME = "Anna Ivanova"
TEXT_LIMIT = 4096
CHAT_OFFSET = 2_000_000_000
"""Peer ids from here on are group chats; a person's id is below."""
STORE = JsonLines(MESSAGES)


def conversation(peer: int | None, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with ``peer`` (every chat if None) with edits, deletions and presses
    applied, oldest first."""
    shown: list[dict[str, Any]] = []
    by_id: dict[tuple[int, int], dict[str, Any]] = {}
    for r in log:
        if peer is not None and r.get("peer_id") != peer:
            continue
        key = (int(r.get("peer_id") or 0), int(r.get("cmid") or r.get("target") or 0))
        if r.get("type") == "message":
            msg = dict(r, edited=False, deleted=False)
            shown.append(msg)
            by_id[key] = msg
            continue
        target = by_id.get(key)
        if target is None:
            continue
        if r["type"] == "edit":
            target.update(text=r.get("text") or "", edited=True)
        elif r["type"] == "delete":
            target.update(deleted=True)
        elif r["type"] == "press":
            target["pressed"] = r.get("title")
    return shown


class DemoVK(CustomerPage):
    """The simulator plus what a person needs around it: the page, the control API, the
    conversation log, and the terminal lines saying what the community did."""

    def __init__(self, state: dict[str, Any], args: argparse.Namespace) -> None:
        from tests.connectors.vk.simulator import VKSimulator

        super().__init__(state, args, STORE, FILES)
        self.sim = VKSimulator(
            state["vk_access_token"], int(state["vk_group_id"]),
            secret=state["vk_secret"], confirmation_code=state["vk_confirmation_code"],
        )  # fmt: skip
        self.sim.callback_url = vk_callback_url(state)
        # VK repeats an event the server did not take for a while; here a few seconds cover a
        # restart of the bridge.
        self.sim.callback_attempts = 10
        self.sim.callback_retry_delay = 1.0
        self.seen = {"actions": 0, "rejected": 0}
        self.confirmed = False
        self.names: dict[int, str] = {}

    def who(self, peer: int) -> str:
        name = self.names.get(peer)
        return f"{name} (id{peer})" if name else f"id{peer}"

    def restore(self) -> None:
        """Give a fresh simulator what the last run knew: the names of the people who wrote
        (whom the community may write to) and each chat's highest message id."""
        sim = self.sim
        for r in self.log:
            peer = int(r.get("peer_id") or 0)
            if r.get("type") != "message" or not peer:
                continue
            sim.cmids[peer] = max(sim.cmids.get(peer, 0), int(r.get("cmid") or 0))
            if r.get("direction") == "customer":
                first, _, last = str(r.get("name") or "").partition(" ")
                sim.name(peer, first or "User", last)
                sim.allow(peer)
                self.names[peer] = str(r.get("name") or "")

    # ------------------------------------------------------------------ customer -> community

    async def customer_message(
        self, user_id: int, name: str, text: str, file: dict[str, Any] | None
    ) -> dict[str, Any]:
        """A ``message_new`` event of ``user_id``, posted to the bridge as VK would."""
        sim = self.sim
        first, _, last = name.strip().partition(" ")
        sim.name(user_id, first or "User", last.strip())
        self.names[user_id] = name
        attachments, saved = [], None
        if file is not None:
            data, filename, mimetype = file["data"], file["name"], file["mimetype"]
            # VK apps send pictures as photos; other files as documents with their name.
            if mimetype.startswith("image/"):
                attachments.append(sim.photo(data))
            else:
                attachments.append(sim.doc(data, filename, mimetype))
        event = sim.message(user_id, text, attachments=attachments)
        message = event["object"]["message"]
        if file is not None:
            saved = self.save_file(f"c{user_id}-{message['conversation_message_id']}",
                                   file["name"], file["data"])  # fmt: skip
        delivery = await sim.deliver(event)
        ok = delivery is None or delivery.ok
        record: dict[str, Any] = {
            "direction": "customer", "type": "message", "peer_id": user_id,
            "cmid": message["conversation_message_id"], "name": name, "text": text,
            "time": message["date"], "accepted": ok,
        }  # fmt: skip
        if saved:
            record["file"] = saved
        self.record(record)
        answer = {"peer_id": user_id, "cmid": record["cmid"]}
        if not ok:
            attempts = delivery.attempts if delivery is not None else []
            last_try = attempts[-1] if attempts else None
            why = (f"HTTP {last_try.status} {last_try.answer!r}" if last_try and last_try.status
                   else (last_try.error if last_try else "no attempt"))  # fmt: skip
            self.say(f"VK: {self.who(user_id)} wrote, but the bridge did not take the event "
                     f"({len(attempts)} attempts, last: {short(str(why), 120)})")  # fmt: skip
            return {**answer, "ok": False, "error": f"the bridge did not take the event: {why}"}
        extra = f"[{saved['name']}, {saved['size']} bytes]" if saved else ""
        self.say(f"VK: {self.who(user_id)} wrote to the community: {joined(short(text), extra)}")
        return {**answer, "ok": True}

    async def press(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The customer presses a callback button of the community's message: a
        ``message_event``, as VK sends it."""
        self.collect()
        try:
            peer, cmid = int(data.get("peer_id") or 0), int(data.get("cmid") or 0)
        except (TypeError, ValueError):
            raise Refused("peer_id and cmid must be numbers") from None
        label = str(data.get("id") or "")
        sent = self.sim.find_sent(peer, cmid)
        if sent is None or label not in [title for title, _ in sent.buttons]:
            raise Refused(f"the community's message {cmid} has no button {label!r}")
        delivery = await self.sim.deliver(self.sim.press(peer, peer, cmid, label))
        ok = delivery is None or delivery.ok
        self.record({"type": "press", "peer_id": peer, "target": cmid, "title": label,
                     "accepted": ok})  # fmt: skip
        if not ok:
            return {"ok": False, "error": "the bridge did not take the event"}, 502
        self.say(f"VK: {self.who(peer)} pressed {label!r}")
        return {"ok": True, "title": label}, 200

    # ------------------------------------------------------------------ community -> customer

    async def watch(self) -> None:
        """Confirm the bridge's callback address once it answers (as VK does when the address
        is saved), then log what the community (that is, the bridge) does, as it happens."""
        while True:
            if not self.confirmed:
                await self.confirm()
            self.collect()
            # The simulator records every call and delivery; keep the lists short.
            for records in (self.sim.calls, self.sim.webhook_deliveries):
                if len(records) > 1000:
                    del records[:-100]
            await asyncio.sleep(0.2)

    async def confirm(self) -> None:
        try:
            answer = await self.sim.confirm()
        except Exception:  # noqa: BLE001 - the bridge is not listening yet
            return
        if answer == self.state["vk_confirmation_code"]:
            self.confirmed = True
            self.say(f"VK: the bridge's callback address {self.sim.callback_url} is confirmed "
                     "(it answered with the community's confirmation code)")  # fmt: skip

    def collect(self) -> None:
        sim, seen = self.sim, self.seen
        for kind, sent, text in sim.actions[seen["actions"] :]:
            seen["actions"] += 1
            peer = sent.peer_id
            if kind == "edit":
                self.record({"type": "edit", "peer_id": peer, "target": sent.cmid, "text": text})
                self.say(f"VK: the community edited a message to {self.who(peer)}: {short(text)}")
                continue
            if kind == "delete":
                self.record({"type": "delete", "peer_id": peer, "target": sent.cmid})
                self.say(f"VK: the community deleted a message in the chat with {self.who(peer)}")
                continue
            record: dict[str, Any] = {
                "direction": "community", "type": "message", "peer_id": peer, "cmid": sent.cmid,
                "text": text, "reply_to": sent.reply_to, "time": sent.at,
                "buttons": [[{"id": label, "title": label}] for label, _ in sent.buttons],
            }  # fmt: skip
            if sent.files:
                first = sent.files[0]
                record["file"] = self.save_file(f"b{peer}-{sent.cmid}", first.filename, first.data)
            self.record(record)
            extra = f"[{record['file']['name']}]" if "file" in record else ""
            self.say(f"VK: the community answered {self.who(peer)}: {joined(short(text), extra)}")
        for rejection in sim.rejected[seen["rejected"] :]:
            seen["rejected"] += 1
            self.say(f"VK: refused {rejection.method} from the bridge: error {rejection.code}")

    # ------------------------------------------------------------------ HTTP

    def render_page(self) -> str:
        return render(
            PAGE, COMMUNITY=VK_COMMUNITY_NAME, GROUP_ID=str(self.state["vk_group_id"]),
            USER_ID=str(DEFAULT_USER_ID), NAME=DEFAULT_NAME,
        )  # fmt: skip

    async def api_messages(self, request: Any) -> Any:
        self.collect()
        raw = request.query.get("peer", "").strip()
        peer = int(raw) if raw.isdigit() else None
        return json_answer(
            {
                "community": VK_COMMUNITY_NAME,
                "confirmed": self.confirmed,
                "messages": conversation(peer, self.log) if peer else [],
            }
        )

    async def api_ready(self, _request: Any) -> Any:
        return page.ready_answer("callback_confirmed", self.confirmed)

    async def send(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        name = str(data.get("name") or "").strip()
        text = str(data.get("text") or "").strip()
        raw_id = data.get("user_id")
        try:
            user_id = int(str(DEFAULT_USER_ID if raw_id in (None, "") else raw_id).strip())
        except ValueError:
            raise Refused("the user id must be a number") from None
        if not 0 < user_id < CHAT_OFFSET:
            raise Refused(f"a VK user id is between 1 and {CHAT_OFFSET - 1}")
        if not name:
            raise Refused("the name is required")
        file = page.uploaded_file(data.get("file"))
        if file is None and not text:
            raise Refused("write a text or choose a file")
        if len(text) > TEXT_LIMIT:
            raise Refused(f"a VK message is at most {TEXT_LIMIT} characters")
        result = await self.customer_message(user_id, name, text, file)
        return result, 200 if result["ok"] else 502


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    state = load_state()
    demo = DemoVK(state, args)
    sim = demo.sim
    # The simulator opens its own listener on a random port; the demo serves the same VK API
    # handlers on the fixed port the bridge is configured with, next to its own pages, and
    # tells the simulator so: upload and file URLs point there.
    await sim.start()
    sim.port = state["vk_port"]
    demo.restore()
    app = web.Application(client_max_size=256 * (1 << 20))
    demo.add_routes(app, ready=demo.api_ready)
    sim.add_routes(app)
    line = (
        f"VK simulator listening on {vk_url(state)}: the VK API of the community "
        f"{VK_COMMUNITY_NAME} (club{state['vk_group_id']}) for the bridge, the customer page "
        "for you"
    )
    return await page.serve_simulated(demo, app, state["vk_port"], line)


# --------------------------------------------------------------------------- the CLI


def cmd_send(args: argparse.Namespace) -> int:
    """Ask the running simulator to deliver a VK user's message to the community."""
    return page.send_command(
        vk_url(load_state()),
        {"user_id": args.user_id, "name": args.name, "text": args.text},
        "the VK simulator",
        lambda a: (
            f"Sent to {VK_COMMUNITY_NAME} as {args.name} (VK user id{a['peer_id']}): "
            f"message {a['cmid']}"
        ),
        file=args.file,
    )


def send_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("text", nargs="?", default="", help="the message (with --file, beside it)")
    s.add_argument(
        "--user-id", type=int, default=DEFAULT_USER_ID,
        help="the customer's VK user id, which is also the chat's peer id (default: %(default)s)",
    )  # fmt: skip
    s.add_argument("--name", default=DEFAULT_NAME, help="first and last name (%(default)s)")
    s.add_argument("--file", type=Path, help="send this file (an image as a photo, else a doc)")


def main() -> int:
    return page.main(
        "The demo's VK: the VK API simulator and a VK user writing to the community.",
        send=cmd_send,
        send_help="write to the company's community as a VK user",
        send_arguments=send_arguments,
        serve=serve,
        serve_help="run the simulator with the customer page",
    )


if __name__ == "__main__":
    sys.exit(main())
