"""The demo's Telegram: a local Bot API server with the company's bot, and a customer writing
to that bot.

    python demo/telegram_customer.py serve                  # started by scripts/demo.sh
    python demo/telegram_customer.py send "Привет"          # write to the bot as a customer
    python demo/telegram_customer.py send "Hi" --user-id 5550002 --name "Olga Smirnova"
    python demo/telegram_customer.py send "The receipt" --file receipt.jpg
    python demo/telegram_customer.py send "/start newsletter"   # as a t.me deep link does

``serve`` runs the test suite's Telegram Bot API simulator
(``tests/connectors/telegram/simulator.py``) on DEMO_TELEGRAM_PORT (8091). The bridge's
``demo-telegram`` account talks to it exactly as it would to api.telegram.org: it polls
``getUpdates`` and answers with ``sendMessage``, ``sendPhoto``, ``editMessageText`` and so on.
The same port serves, outside the Bot API, a page for people (write as a Telegram customer,
see the bot's answers and press the inline buttons under them) and a small control API that
the page and ``send`` use: a customer's message (or press, a ``callback_query``) comes from
Telegram's side, so it is pushed into the simulator as an update rather than sent through the
Bot API. ``/?start=<payload>`` opens the page with ``/start <payload>`` ready to send, as a
``t.me/<bot>?start=<payload>`` deep link opens the app.

The conversation is kept in ``demo-data/telegram-messages.jsonl`` (and files in
``demo-data/telegram-files/``), so that it, the chats and the id counters survive a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import page
from common import (
    DATA,
    JsonLines,
    joined,
    load_state,
    short,
    telegram_url,
)
from page import CustomerPage, Refused, html, json_answer, render

MESSAGES = DATA / "telegram-messages.jsonl"
COUNTERS = DATA / "telegram-counters.json"
FILES = DATA / "telegram-files"
DEFAULT_USER_ID = 5550001
DEFAULT_NAME = "Ivan Petrov"
BOT_NAME = "Demo Company"
TYPING_SHOWN = 6.0
"""Seconds a "typing" chat action is shown on the page (Telegram shows it for 5 s)."""
START = re.compile(r"/start(?:@\w+)?(?: .*)?", re.DOTALL)
MAX_USER_ID = 2**52


# --------------------------------------------------------------------------- the store


STORE = JsonLines(MESSAGES)


def conversation(chat: int | None, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages of ``chat`` (every chat if None) with edits, deletions and the bot's
    reactions applied, oldest first."""
    shown: list[dict[str, Any]] = []
    by_id: dict[tuple[int, int], dict[str, Any]] = {}
    for r in log:
        if chat is not None and r.get("chat_id") != chat:
            continue
        key = (int(r.get("chat_id") or 0), int(r.get("message_id") or r.get("target") or 0))
        if r.get("type") == "message":
            msg = dict(r, reactions=[], edited=False, deleted=False, buttons=buttons_of(r))
            shown.append(msg)
            by_id[key] = msg
            continue
        target = by_id.get(key)
        if target is None:
            continue
        if r["type"] == "edit":
            target.update(text=r.get("text") or "", edited=True)
            if r.get("message"):
                target["message"] = r["message"]
                target["buttons"] = buttons_of(r)
        elif r["type"] == "delete":
            target.update(deleted=True)
        elif r["type"] == "reaction":
            target["reactions"] = list(r.get("emojis") or [])
        elif r["type"] == "press":
            target["pressed"] = r.get("title")
    return shown


def buttons_of(record: dict[str, Any]) -> list[list[dict[str, str]]]:
    """The callback buttons of a bot message's inline keyboard: rows of {id, title}."""
    markup = (record.get("message") or {}).get("reply_markup") or {}
    return [
        [{"id": str(key["callback_data"]), "title": str(key.get("text") or "")}
         for key in row if "callback_data" in key]
        for row in markup.get("inline_keyboard") or []
    ]  # fmt: skip


def _load_counters() -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads(COUNTERS.read_text()).items()}
    except (FileNotFoundError, ValueError, AttributeError):
        return {}


def _save_counters(counters: dict[str, int]) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = COUNTERS.with_suffix(".tmp")
    tmp.write_text(json.dumps(counters) + "\n")
    tmp.replace(COUNTERS)


# --------------------------------------------------------------------------- the simulator


class DemoTelegram(CustomerPage):
    """The simulator plus what a person needs around it: the page, the control API, the
    conversation log, and the terminal lines saying what the bot did."""

    def __init__(self, state: dict[str, Any], args: argparse.Namespace) -> None:
        from tests.connectors.telegram import updates as tg
        from tests.connectors.telegram.simulator import TelegramSimulator

        super().__init__(state, args, STORE, FILES)
        self.tg = tg
        self.sim = TelegramSimulator(
            state["telegram_token"], bot_username=state["telegram_bot_username"], bot_name=BOT_NAME
        )
        self.counters = _load_counters()
        self.seen = {"sent": 0, "edits": 0, "deletions": 0, "reactions": 0, "actions": 0}
        self.typing: dict[int, float] = {}
        self.bridge_connected = False
        self.names: dict[int, str] = {}

    def who(self, chat_id: int) -> str:
        name = self.names.get(chat_id)
        return f"{name} ({chat_id})" if name else str(chat_id)

    # ------------------------------------------------------------------ restart

    def restore(self) -> None:
        """Give a fresh simulator what the last run knew: its chats and messages (so the bot
        can answer, edit and delete there) and ids larger than any handed out before (the
        bridge keeps its getUpdates offset and remembers message ids)."""
        sim, tg = self.sim, self.tg
        highest = self.counters.get("message_id", 0)
        for r in self.log:
            highest = max(highest, int(r.get("message_id") or 0))
        # Bot messages are logged a moment after they are sent: leave room for a few lost ones.
        tg.note_message_id(highest + 100)
        last_update = self.counters.get("update_id", 0)
        if last_update and hasattr(sim, "_next_update_id"):
            sim._next_update_id = max(sim._next_update_id, last_update)
        store = getattr(sim, "_store", None)
        for msg in conversation(None, self.log):
            chat = (msg.get("message") or {}).get("chat")
            if not isinstance(chat, dict):
                continue
            if chat["id"] not in self.names:
                parts = (chat.get("first_name"), chat.get("last_name"), chat.get("title"))
                self.names[chat["id"]] = " ".join(p for p in parts if p) or str(chat["id"])
                sim.add_chat(chat)
                if chat.get("type") == "private":
                    sim.add_user(
                        chat["id"], chat.get("first_name") or "User",
                        last_name=chat.get("last_name"), started=False,
                    )  # fmt: skip
            if store is not None and not msg["deleted"]:
                store(msg["message"], outgoing=msg["direction"] == "staff")

    def remember_ids(self, update_id: int | None = None) -> None:
        if update_id is not None:
            self.counters["update_id"] = update_id
        self.counters["message_id"] = max(
            [self.counters.get("message_id", 0)]
            + [int(r.get("message_id") or 0) for r in self.log[-50:]]
        )
        _save_counters(self.counters)

    # ------------------------------------------------------------------ customer -> bot

    def customer_message(
        self, user_id: int, name: str, text: str, file: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Push one message from a Telegram user to the bot, as Telegram would."""
        sim, tg = self.sim, self.tg
        first, _, last = name.strip().partition(" ")
        user = tg.user(user_id, first or "User", last_name=last.strip() or None)
        chat = tg.private_chat(user)
        caption = text or None
        saved = None
        if file is not None:
            data, filename, mimetype = file["data"], file["name"], file["mimetype"]
            if mimetype == "image/jpeg":
                # Telegram apps send pictures as photos (re-encoded as JPEG); other files as
                # documents with their name and type.
                stored = sim.add_file(data, kind="photo", mime_type=mimetype)
                # One size only: the builders' extra thumbnail is not downloadable.
                size = tg.photo_size(stored.ref(), stored.width or 1280, stored.height or 960)
                msg = tg.message(chat, user, photo=[size], caption=caption)
            else:
                stored = sim.add_file(
                    data, kind="document", file_name=filename, mime_type=mimetype
                )
                msg = tg.document_message(
                    chat, user, stored.ref(), file_name=filename, mime_type=mimetype,
                    caption=caption,
                )  # fmt: skip
            saved = self.save_file(f"c{msg['message_id']}", filename, data)
        elif START.fullmatch(text):
            # A deep link t.me/<bot>?start=<payload> makes the app send "/start <payload>".
            command = text.split(" ", 1)[0]
            msg = tg.text_message(
                chat, user, text, entities=[tg.entity("bot_command", 0, len(command))]
            )
        else:
            msg = tg.text_message(chat, user, text)
        update = sim.push_update(tg.message_update(msg))
        self.names[user_id] = name
        record = {
            "direction": "customer",
            "type": "message",
            "chat_id": user_id,
            "message_id": msg["message_id"],
            "update_id": update["update_id"],
            "name": name,
            "text": text,
            "time": msg["date"],
            "message": msg,
        }
        if saved:
            record["file"] = saved
        self.record(record)
        self.remember_ids(update["update_id"])
        extra = f"[file {saved['name']}, {saved['size']} bytes]" if saved else ""
        self.say(f"Telegram: {self.who(user_id)} wrote to the bot: {joined(short(text), extra)}")
        return {"chat_id": user_id, "message_id": msg["message_id"],
                "update_id": update["update_id"]}  # fmt: skip

    # ------------------------------------------------------------------ bot -> customer

    async def watch(self) -> None:
        """Log what the bot (that is, the bridge) does in the simulator, as it happens."""
        sim = self.sim
        while True:
            self.collect()
            if not self.bridge_connected and any(
                r.status == 200 and r.method.lower() in ("getme", "getupdates")
                for r in sim.requests
            ):
                self.bridge_connected = True
                self.say("Telegram: the bridge is connected to the bot (polling getUpdates)")
            if len(sim.requests) > 1000:  # every poll is recorded; keep the list short
                del sim.requests[:-100]
            await asyncio.sleep(0.2)

    def collect(self) -> None:
        sim, seen = self.sim, self.seen
        changed = False
        for sent in sim.sent[seen["sent"] :]:
            seen["sent"] += 1
            changed = True
            record: dict[str, Any] = {
                "direction": "staff",
                "type": "message",
                "method": sent.method,
                "chat_id": sent.chat_id,
                "message_id": sent.message_id,
                "text": sent.rendered or "",
                "raw": sent.text,
                "reply_to": sent.reply_to,
                "time": sent.message.get("date") or time.time(),
                "message": sent.message,
            }
            if sent.file is not None:
                record["file"] = self.save_file(
                    f"b{sent.message_id}", sent.file.filename or "file", sent.file.data
                )
            self.record(record)
            what = f"[{sent.method}: {record['file']['name']}]" if sent.file else ""
            shown = joined(short(record["text"]), what)
            self.say(f"Telegram: the bot answered {self.who(sent.chat_id)}: {shown}")
        for edit in sim.edits[seen["edits"] :]:
            seen["edits"] += 1
            changed = True
            self.record({"type": "edit", "chat_id": edit.chat_id, "target": edit.message_id,
                         "text": edit.rendered or "", "message": edit.message})  # fmt: skip
            self.say(f"Telegram: the bot edited a message to {self.who(edit.chat_id)}: "
                     f"{short(edit.rendered or '')}")  # fmt: skip
        for deletion in sim.deletions[seen["deletions"] :]:
            seen["deletions"] += 1
            self.record({"type": "delete", "chat_id": deletion.chat_id,
                         "target": deletion.message_id})  # fmt: skip
            self.say(f"Telegram: the bot deleted a message in the chat with "
                     f"{self.who(deletion.chat_id)}")  # fmt: skip
        for reaction in sim.reactions[seen["reactions"] :]:
            seen["reactions"] += 1
            self.record({"type": "reaction", "chat_id": reaction.chat_id,
                         "target": reaction.message_id, "emojis": reaction.emojis})  # fmt: skip
            shown = " ".join(reaction.emojis) or "(none)"
            self.say(f"Telegram: the bot set the reaction {shown} in the chat with "
                     f"{self.who(reaction.chat_id)}")  # fmt: skip
        for action in sim.actions[seen["actions"] :]:
            seen["actions"] += 1
            if action.action == "typing":
                self.typing[action.chat_id] = time.monotonic()
        if changed:
            self.remember_ids()

    async def press(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The customer presses a callback button under the bot's message: a
        ``callback_query`` update, as Telegram sends it."""
        self.collect()
        try:
            chat_id, message_id = int(data.get("chat_id") or 0), int(data.get("message_id") or 0)
        except (TypeError, ValueError):
            raise Refused("chat_id and message_id must be numbers") from None
        button = str(data.get("id") or "")
        shown = next((m for m in conversation(chat_id, self.log)
                      if m.get("message_id") == message_id and m["direction"] == "staff"),
                     None)  # fmt: skip
        title = next((b["title"] for row in (shown or {}).get("buttons", []) for b in row
                      if b["id"] == button), None)  # fmt: skip
        if shown is None or title is None:
            raise Refused(f"the bot's message {message_id} has no button {button!r}")
        try:
            update = self.sim.press_button(chat_id, message_id, button)
        except (KeyError, ValueError) as e:  # e.g. sent before the simulator restarted
            raise Refused(f"Telegram does not know this button any more: {e}") from None
        self.record({"type": "press", "chat_id": chat_id, "target": message_id, "id": button,
                     "title": title, "update_id": update["update_id"]})  # fmt: skip
        self.remember_ids(update["update_id"])
        self.say(f"Telegram: {self.who(chat_id)} pressed {title!r}")
        return {"ok": True, "update_id": update["update_id"], "title": title}, 200

    # ------------------------------------------------------------------ HTTP

    def render_page(self) -> str:
        return render(
            PAGE, BOT=self.state["telegram_bot_username"], BOT_NAME=BOT_NAME,
            USER_ID=str(DEFAULT_USER_ID), NAME=DEFAULT_NAME,
        )  # fmt: skip

    async def api_messages(self, request: Any) -> Any:
        self.collect()
        raw = request.query.get("chat", "").strip()
        chat = int(raw) if raw.lstrip("-").isdigit() else None
        messages = [
            {k: v for k, v in m.items() if k != "message"} for m in conversation(chat, self.log)
        ]
        typing_at = self.typing.get(chat) if chat is not None else None
        return json_answer(
            {
                "bot": f"@{self.state['telegram_bot_username']}",
                "messages": messages,
                "typing": bool(typing_at and time.monotonic() - typing_at < TYPING_SHOWN),
            }
        )

    async def api_ready(self, _request: Any) -> Any:
        return page.ready_answer("bridge_connected", self.bridge_connected)

    async def send(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        name = str(data.get("name") or "").strip()
        text = str(data.get("text") or "").strip()
        raw_id = data.get("user_id")
        try:
            user_id = int(str(DEFAULT_USER_ID if raw_id in (None, "") else raw_id).strip())
        except ValueError:
            raise Refused("the user id must be a number") from None
        if not 0 < user_id < MAX_USER_ID:
            raise Refused(f"the user id must be between 1 and {MAX_USER_ID - 1}")
        if not name:
            raise Refused("the name is required")
        if user_id == self.sim.bot_user["id"]:
            raise Refused("that is the bot's own id")
        file = page.uploaded_file(data.get("file"))
        length = self.tg.utf16_len(text)
        if file is None and not text:
            raise Refused("write a text or choose a file")
        if file is None and length > 4096:
            raise Refused(f"a Telegram message is at most 4096 characters (this one: {length})")
        if file is not None and length > 1024:
            raise Refused(f"a Telegram caption is at most 1024 characters (this one: {length})")
        result = self.customer_message(user_id, name, text, file)
        return {"ok": True, **result}, 200


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    state = load_state()
    demo = DemoTelegram(state, args)
    sim = demo.sim
    # The simulator opens its own listener on a random port; the demo serves the same Bot API
    # handlers on the fixed port the bridge is configured with, next to its own pages.
    await sim.start()
    demo.restore()
    app = web.Application(client_max_size=sim.limits.upload_max * 2 + (1 << 20))
    app.router.add_route("*", "/bot{token}/{method}", sim._handle_api)
    app.router.add_get("/file/bot{token}/{path:.+}", sim._handle_file)
    demo.add_routes(app, ready=demo.api_ready)
    line = (
        f"Telegram simulator listening on {telegram_url(state)}: the Bot API of "
        f"@{state['telegram_bot_username']} for the bridge, the customer page for you"
    )
    return await page.serve_simulated(demo, app, state["telegram_port"], line)


# --------------------------------------------------------------------------- the CLI


def cmd_send(args: argparse.Namespace) -> int:
    """Ask the running simulator to deliver a customer's message to the bot."""
    state = load_state()
    return page.send_command(
        telegram_url(state),
        {"user_id": args.user_id, "name": args.name, "text": args.text},
        "the Telegram simulator",
        lambda a: (
            f"Sent to @{state['telegram_bot_username']} as {args.name} (Telegram user "
            f"{args.user_id}): message {a['message_id']}, update {a['update_id']}"
        ),
        file=args.file,
        timeout=30,
    )


def send_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("text", nargs="?", default="", help="the message (a caption with --file)")
    s.add_argument(
        "--user-id", type=int, default=DEFAULT_USER_ID,
        help="the customer's Telegram user id, which is also the chat id (default: %(default)s)",
    )  # fmt: skip
    s.add_argument("--name", default=DEFAULT_NAME, help="first and last name (%(default)s)")
    s.add_argument("--file", type=Path, help="send this file (.jpg as a photo, else a document)")


def main() -> int:
    return page.main(
        "The demo's Telegram: the Bot API simulator and a customer of the bot.",
        send=cmd_send,
        send_help="write to the company's bot as a Telegram customer",
        send_arguments=send_arguments,
        serve=serve,
        serve_help="run the simulator with the customer page",
    )


PAGE = html(
    "Telegram customer (bridge demo)",
    "#eef4fa",
    """\
 #head { margin-top: 1.5rem; font-weight: 600; } #typing { color: #2a8bd6; font-size: .85rem;
        min-height: 1.2em; font-weight: normal; }
 #log { margin-top: .5rem; display: flex; flex-direction: column; gap: .5rem; }
 .msg { padding: .5rem .8rem; border-radius: .6rem; max-width: 80%; white-space: pre-wrap; }
 .customer { align-self: flex-end; background: #dcf8c6; }
 .staff { align-self: flex-start; background: #f1f1f1; }
 .meta { font-size: .75rem; color: #666; } .deleted { color: #999; font-style: italic; }
 .quote { border-left: 3px solid #2a8bd6; padding-left: .4rem; color: #555; font-size: .85rem;
        margin-bottom: .2rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
""",
    """\
<h1>Telegram &mdash; a customer writes to @@BOT@</h1>
<p class="hint">This page plays a customer in the Telegram app. The bot @@BOT@ ("@BOT_NAME@")
lives on a local Telegram Bot API simulator; the bridge polls it like api.telegram.org, so
what you send here reaches the company's staff in Matrix, and their answers (the bot's
messages, edits, deletions and reactions) appear below. The page refreshes itself.
Try the newsletter's deep link <a href="?start=newsletter">t.me/@BOT@?start=newsletter</a>:
it fills in <code>/start newsletter</code>, as the app sends it; the bot answers with buttons
to press. <code>STOP</code> unsubscribes.</p>
<form id="f">
 <label for="name">Your name</label><input id="name" value="@NAME@" required>
 <label for="user">Telegram user id</label><input id="user" value="@USER_ID@" required
   inputmode="numeric" pattern="[0-9]+">
 <label for="text">Message</label><textarea id="text"></textarea>
 <label for="file">File (optional)</label><input id="file" type="file">
 <button>Send</button><div id="status"></div>
</form>
<div id="head">Chat with @BOT_NAME@ <div id="typing"></div></div>
<div id="log"></div>
""",
    """\
async function refresh() {
  try {
    const r = await fetch('/api/messages?chat=' + encodeURIComponent($('user').value.trim()));
    const res = await r.json();
    $('typing').textContent = res.typing ? 'typing…' : '';
    showChat(res.messages, {
      id: 'message_id', company: 'staff', name: res.bot,
      press: (m, b) => ({ chat_id: m.chat_id, message_id: m.message_id, id: b.id }),
      extra: (m, bubble) => {
        if (m.reactions.length && !m.deleted) { bubble.append(div('', m.reactions.join(' '))); }
      },
    });
  } catch (e) { $('status').textContent = 'Cannot reach the simulator: ' + e; }
}
onSubmit(() => sendForm(
  { name: $('name').value, user_id: $('user').value, text: $('text').value },
  res => 'Delivered to the bot (update ' + res.update_id + ').',
));
const start = new URLSearchParams(location.search).get('start');
if (start) { $('text').value = '/start ' + start; }
poll(1500, 'user');
""",
)


if __name__ == "__main__":
    sys.exit(main())
