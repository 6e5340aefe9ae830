"""The demo's MAX: a local MAX Bot API server with the company's bot, and a MAX user writing to
that bot.

    python demo/max_customer.py serve                     # started by scripts/demo.sh
    python demo/max_customer.py send "Добрый день"        # write to the bot as a MAX user
    python demo/max_customer.py send "Hi" --user-id 5400002 --name "Pavel Sidorov"
    python demo/max_customer.py send "The receipt" --file receipt.jpg

``serve`` runs the test suite's MAX Bot API simulator (``tests/connectors/max/simulator/``) on
DEMO_MAX_PORT (8095). The bridge's ``demo-max`` account talks to it as it would to
platform-api2.max.ru, in webhook mode: when it starts it subscribes its listener
(``POST /subscriptions`` with a secret of its own; MAX wants HTTPS there, the simulator also
takes loopback HTTP), and it answers with ``POST /messages``, ``PUT`` and ``DELETE /messages``
and the upload methods. The customers' updates go the other way as MAX does it: the simulator
posts each to ``/connectors/demo-max/webhook`` with the secret in ``X-Max-Bot-Api-Secret`` and
repeats it for a few seconds (a restart of the bridge) until the bridge answers 200. The same
port serves a page for people (write as a MAX user, see the bot's answers and press the buttons
under them) and the control API that the page and ``send`` use.

The conversation is kept in ``demo-data/max-messages.jsonl`` (and files in
``demo-data/max-files/``); after a restart the simulator knows again the names of who wrote,
but the bot cannot edit or delete what it sent before the restart, nor its buttons be pressed.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path
from typing import Any

import page
from common import DATA, JsonLines, joined, load_state, max_url, short
from max_page import PAGE
from page import CustomerPage, Refused, json_answer, render

MESSAGES = DATA / "max-messages.jsonl"
FILES = DATA / "max-files"
DEFAULT_USER_ID = 5_400_001
DEFAULT_NAME = "Ivan Petrov"
TEXT_LIMIT = 4000
DELIVERY_ATTEMPTS = 10
"""Tries of one update, a second apart, while the bridge does not take it (or has no webhook
subscription, as while it restarts)."""
STORE = JsonLines(MESSAGES)


def conversation(chat: int, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages of the dialog ``chat`` with edits, deletions and presses applied, oldest
    first."""
    shown: list[dict[str, Any]] = []
    by_mid: dict[str, dict[str, Any]] = {}
    for r in log:
        if r.get("chat_id") != chat:
            continue
        if r.get("type") == "message":
            msg = dict(r, edited=False, deleted=False)
            shown.append(msg)
            by_mid[str(r.get("mid"))] = msg
            continue
        target = by_mid.get(str(r.get("target")))
        if target is None:
            continue
        if r["type"] == "edit":
            target.update(text=r.get("text") or "", edited=True)
        elif r["type"] == "delete":
            target.update(deleted=True)
        elif r["type"] == "press":
            target["pressed"] = r.get("title")
    return shown


def user_id_of(raw: Any) -> int:
    try:
        user_id = int(str(DEFAULT_USER_ID if raw in (None, "") else raw).strip())
    except ValueError:
        raise Refused("the user id must be a number") from None
    if user_id <= 0:
        raise Refused("a MAX user id is a positive number")
    return user_id


class DemoMax(CustomerPage):
    """The simulator plus what a person needs around it: the page, the control API, the
    conversation log, and the terminal lines saying what the bot did."""

    def __init__(self, state: dict[str, Any], args: argparse.Namespace) -> None:
        from tests.connectors.max.simulator import MaxSimulator

        super().__init__(state, args, STORE, FILES)
        # One post per try: ``deliver`` below spaces the tries out.
        self.sim = MaxSimulator(
            state["max_token"], username=state["max_bot_username"], webhook_attempts=1
        )
        self.seen = {"sent": 0, "edits": 0, "deletions": 0, "errors": 0}
        self.names: dict[int, str] = {}

    @property
    def subscribed(self) -> bool:
        return self.sim.subscription is not None

    def who(self, user_id: int) -> str:
        name = self.names.get(user_id)
        return f"{name} (id{user_id})" if name else f"id{user_id}"

    def restore(self) -> None:
        """Give a fresh simulator the names of the people who wrote before."""
        for r in self.log:
            if r.get("direction") == "customer" and r.get("user_id"):
                self.names[int(r["user_id"])] = str(r.get("name") or "")

    async def deliver(self, update: dict[str, Any]) -> str | None:
        """Post ``update`` to the bridge's webhook, as MAX does, until it answers 200; None
        then, else why not."""
        why = "no attempt"
        for attempt in range(DELIVERY_ATTEMPTS):
            if attempt:
                await asyncio.sleep(1.0)
            if not self.subscribed:
                why = "the bridge has no webhook subscription"
                continue
            try:
                delivery = await self.sim.deliver(update)
            except Exception as e:  # noqa: BLE001 - the bridge is not listening (restarting)
                why = f"{type(e).__name__}: {e}"
                continue
            if delivery is None or delivery.status == 200:
                return None
            why = f"HTTP {delivery.status} {delivery.answer!r}"
        return why

    # ------------------------------------------------------------------ customer -> bot

    async def customer_message(
        self, user_id: int, name: str, text: str, file: dict[str, Any] | None
    ) -> dict[str, Any]:
        """A ``message_created`` update of ``user_id``, posted to the bridge as MAX would."""
        sim = self.sim
        self.names[user_id] = name
        attachments = []
        if file is not None:
            data, filename, mimetype = file["data"], file["name"], file["mimetype"]
            # MAX apps send pictures as images; other files as files with their name.
            kind = "image" if mimetype.startswith("image/") else "file"
            payload = {"url": sim.host_file(data, mimetype), "token": secrets.token_urlsafe(16)}
            attachments.append(
                {"type": kind, "payload": payload, "filename": filename, "size": len(data)}
            )
        update = sim.customer_message(user_id, name, text or None, attachments=attachments)
        mid = update["message"]["body"]["mid"]
        chat = sim.dialog_of(user_id)
        saved = self.save_file(f"c{user_id}-{mid}", file["name"], file["data"]) if file else None
        why = await self.deliver(update)
        record: dict[str, Any] = {
            "direction": "customer", "type": "message", "chat_id": chat, "user_id": user_id,
            "mid": mid, "name": name, "text": text, "time": sim.clock.now(),
            "accepted": why is None,
        }  # fmt: skip
        if saved:
            record["file"] = saved
        self.record(record)
        answer = {"user_id": user_id, "chat_id": chat, "mid": mid}
        if why is not None:
            self.say(f"MAX: {self.who(user_id)} wrote, but the bridge did not take the update "
                     f"({short(why, 120)})")  # fmt: skip
            return {**answer, "ok": False, "error": f"the bridge did not take the update: {why}"}
        extra = f"[{saved['name']}, {saved['size']} bytes]" if saved else ""
        self.say(f"MAX: {self.who(user_id)} wrote to the bot: {joined(short(text), extra)}")
        return {**answer, "ok": True}

    async def press(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The customer presses a button under the bot's message: a ``message_callback``."""
        self.collect()
        user_id = user_id_of(data.get("user_id"))
        mid, payload = str(data.get("mid") or ""), str(data.get("id") or "")
        sent = next((s for s in self.sim.sent if s.mid == mid), None)
        if sent is None or sent.chat_id != self.sim.dialog_of(user_id):
            raise Refused(f"the bot sent no message {mid!r} to this user (since it started)")
        titles = dict(sent.buttons)
        if payload not in titles:
            raise Refused(f"the bot's message {mid} has no button {payload!r}")
        name = self.names.get(user_id) or DEFAULT_NAME
        why = await self.deliver(self.sim.press(mid, payload, user_id, name))
        self.record({"type": "press", "chat_id": sent.chat_id, "target": mid,
                     "title": titles[payload], "accepted": why is None})  # fmt: skip
        if why is not None:
            return {"ok": False, "error": f"the bridge did not take the update: {why}"}, 502
        self.say(f"MAX: {self.who(user_id)} pressed {titles[payload]!r}")
        return {"ok": True, "title": titles[payload]}, 200

    # ------------------------------------------------------------------ bot -> customer

    async def watch(self) -> None:
        """Log what the bot (that is, the bridge) does, as it happens."""
        subscribed = False
        while True:
            if self.subscribed != subscribed:
                subscribed = self.subscribed
                url = (self.sim.subscription or {}).get("url")
                self.say(f"MAX: the bridge subscribed its webhook {url}" if subscribed
                         else "MAX: the bridge removed its webhook subscription")  # fmt: skip
            self.collect()
            # The simulator records every call and delivery; keep the lists short.
            for records in (self.sim.calls, self.sim.webhook_deliveries):
                if len(records) > 1000:
                    del records[:-100]
            await asyncio.sleep(0.2)

    def collect(self) -> None:
        sim, seen = self.sim, self.seen
        for sent in sim.sent[seen["sent"] :]:
            seen["sent"] += 1
            user_id = sent.chat_id - sim.dialog_of(0)  # the demo's chats are all dialogs
            text = sent.plain or ""
            record: dict[str, Any] = {
                "direction": "bot", "type": "message", "chat_id": sent.chat_id, "mid": sent.mid,
                "text": text, "reply_to": sent.reply_to, "time": sent.at,
                "buttons": [[{"id": payload, "title": title}] for payload, title in sent.buttons],
            }  # fmt: skip
            if sent.uploads:
                first = sent.uploads[0]
                record["file"] = self.save_file(
                    f"b{sent.chat_id}-{sent.mid}", first.filename or "file", first.data
                )
            self.record(record)
            extra = f"[{record['file']['name']}]" if "file" in record else ""
            self.say(f"MAX: the bot answered {self.who(user_id)}: {joined(short(text), extra)}")
        for edit in sim.edits[seen["edits"] :]:
            seen["edits"] += 1
            text = edit.plain or ""
            self.record({"type": "edit", "chat_id": edit.chat_id, "target": edit.mid,
                         "text": text})  # fmt: skip
            self.say(f"MAX: the bot edited a message in chat {edit.chat_id}: {short(text)}")
        for deletion in sim.deletions[seen["deletions"] :]:
            seen["deletions"] += 1
            self.record({"type": "delete", "chat_id": deletion.chat_id, "target": deletion.mid})
            self.say(f"MAX: the bot deleted a message in chat {deletion.chat_id}")
        for error in sim.errors[seen["errors"] :]:
            seen["errors"] += 1
            self.say(f"MAX: refused {error.method} {error.path} from the bridge: "
                     f"HTTP {error.status} {error.code}")  # fmt: skip

    # ------------------------------------------------------------------ HTTP

    def render_page(self) -> str:
        return render(
            PAGE, BOT=self.state["max_bot_username"], USER_ID=str(DEFAULT_USER_ID),
            NAME=DEFAULT_NAME,
        )  # fmt: skip

    async def api_messages(self, request: Any) -> Any:
        self.collect()
        raw = request.query.get("user", "").strip()
        user_id = int(raw) if raw.isdigit() else None
        chat = self.sim.dialog_of(user_id) if user_id is not None else None
        return json_answer(
            {
                "bot": self.state["max_bot_username"],
                "subscribed": self.subscribed,
                "user_id": user_id,
                "messages": conversation(chat, self.log) if chat is not None else [],
            }
        )

    async def api_ready(self, _request: Any) -> Any:
        return page.ready_answer("webhook_subscribed", self.subscribed)

    async def send(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        name = str(data.get("name") or "").strip()
        text = str(data.get("text") or "").strip()
        user_id = user_id_of(data.get("user_id"))
        if not name:
            raise Refused("the name is required")
        file = page.uploaded_file(data.get("file"))
        if file is None and not text:
            raise Refused("write a text or choose a file")
        if len(text) > TEXT_LIMIT:
            raise Refused(f"a MAX message is at most {TEXT_LIMIT} characters")
        result = await self.customer_message(user_id, name, text, file)
        return result, 200 if result["ok"] else 502


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from tests.connectors.max.simulator.api import routes

    state = load_state()
    demo = DemoMax(state, args)
    sim = demo.sim
    # The simulator opens its own listener on a random port, where its file and one-time
    # upload URLs point; the demo serves the same Bot API on the fixed port the bridge is
    # configured with, next to its own pages (whose /files/ are the page's).
    await sim.start()
    demo.restore()
    app = web.Application(client_max_size=256 * (1 << 20))
    demo.add_routes(app, ready=demo.api_ready)
    app.add_routes([r for r in routes(sim) if not r.path.startswith("/files/")])
    line = (
        f"MAX simulator listening on {max_url(state)}: the MAX Bot API of the bot "
        f"@{state['max_bot_username']} for the bridge, the customer page for you"
    )
    return await page.serve_simulated(demo, app, state["max_port"], line)


# --------------------------------------------------------------------------- the CLI


def cmd_send(args: argparse.Namespace) -> int:
    """Ask the running simulator to deliver a MAX user's message to the bot."""
    state = load_state()
    return page.send_command(
        max_url(state),
        {"user_id": args.user_id, "name": args.name, "text": args.text},
        "the MAX simulator",
        lambda a: (
            f"Sent to @{state['max_bot_username']} as {args.name} (MAX user id{a['user_id']}, "
            f"chat {a['chat_id']}): message {a['mid']}"
        ),
        file=args.file,
    )


def send_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("text", nargs="?", default="", help="the message (with --file, beside it)")
    s.add_argument(
        "--user-id", type=int, default=DEFAULT_USER_ID,
        help="the customer's MAX user id (default: %(default)s)",
    )  # fmt: skip
    s.add_argument("--name", default=DEFAULT_NAME, help="first and last name (%(default)s)")
    s.add_argument("--file", type=Path, help="send this file (an image as an image, else a file)")


def main() -> int:
    return page.main(
        "The demo's MAX: the MAX Bot API simulator and a MAX user writing to the bot.",
        send=cmd_send,
        send_help="write to the company's bot as a MAX user",
        send_arguments=send_arguments,
        serve=serve,
        serve_help="run the simulator with the customer page",
    )


if __name__ == "__main__":
    sys.exit(main())
