"""The demo's email: the company's support mailbox (a local Dovecot), its outgoing mail server (a
local SMTP server that keeps what it is given) and a customer writing to the company by mail.

    python demo/email_customer.py serve                        # started by scripts/demo.sh
    python demo/email_customer.py send "Hello"                 # mail the company as a customer
    python demo/email_customer.py send "Hi" --subject "Order 42" --name "Erika Mustermann" \\
        --address erika@customer.test

``serve`` starts the test suite's Dovecot (``tests/infra/dovecot.py``) with the mailbox user
``support`` on DEMO_IMAP_PORT (8143; STARTTLS with a self-signed certificate), with its config
and mail in ``demo-data/email/dovecot/`` so that the mailbox survives a restart, and the test
suite's SMTP capture server (``tests/infra/smtp_capture.py``) on DEMO_SMTP_PORT (8025; AUTH as
``support``, no TLS: loopback only). The bridge's ``demo-email`` account reads the mailbox over
IMAP and sends the staff's answers through the SMTP server, which delivers them nowhere: it
keeps them, and this page shows them.

DEMO_MAIL_PORT (8093) serves a page for people (write a mail as a customer: From name and
address, subject, text; below it, the company's replies, refreshing itself) and a small API
that the page and ``send`` use: a customer's mail is put into the support mailbox with IMAP
APPEND, as a mail server delivering it would. The mails both ways are kept in
``demo-data/email-mail.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from common import (
    DATA,
    LOOPBACK,
    REPO,
    JsonLines,
    load_state,
    post_json,
    print_send_result,
)

# The mail servers live in the test suite (the demo installs the project's test extra).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MAIL_LOG = DATA / "email-mail.jsonl"
DOVECOT_DIR = DATA / "email" / "dovecot"
DOVECOT_PID = DATA / "email-dovecot.pid"
MAILBOX_USER = "support"
COMPANY_ADDRESS = "support@demo.test"
COMPANY_NAME = "Demo Company Support"
DEFAULT_NAME = "Erika Mustermann"
DEFAULT_ADDRESS = "erika@customer.test"
DEFAULT_SUBJECT = "A question"


def mail_url(state: dict[str, Any]) -> str:
    return f"http://{LOOPBACK}:{state['mail_port']}"


STORE = JsonLines(MAIL_LOG)
append, records = STORE.append, STORE.records


def _text_of(message: Any) -> str:
    try:
        body = message.get_body(("plain",))
        if body is not None:
            return str(body.get_content()).strip()
        body = message.get_body(("html",))
        return str(body.get_content()).strip() if body is not None else ""
    except (KeyError, LookupError, ValueError):
        return ""


class DemoMail:
    """Dovecot, the SMTP capture, the mail log, the page and terminal lines."""

    def __init__(self, state: dict[str, Any], log_path: Path | None, quiet: bool) -> None:
        from tests.infra.dovecot import DovecotServer
        from tests.infra.smtp_capture import SmtpCapture

        self.state = state
        self.log_path = log_path
        self.quiet = quiet
        self.dovecot = DovecotServer(DOVECOT_DIR, imap_port=state["imap_port"])
        self.dovecot.add_user(MAILBOX_USER, state["email_password"])
        self.smtp = SmtpCapture(
            port=state["smtp_port"], credentials={MAILBOX_USER: state["email_password"]}
        )
        self.log = records()
        self.collected = 0

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)
        if self.log_path:
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")

    def record(self, record: dict[str, Any]) -> None:
        self.log.append(record)
        append(record)

    # ------------------------------------------------------------------ both ways

    def customer_mail(self, name: str, address: str, subject: str, text: str) -> dict[str, Any]:
        """Put a customer's mail into the support mailbox (IMAP APPEND, as delivery would)."""
        msg = EmailMessage()
        msg["From"] = formataddr((name, address))
        msg["To"] = formataddr((COMPANY_NAME, COMPANY_ADDRESS))
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=True)
        message_id = make_msgid(domain=address.rpartition("@")[2] or "customer.test")
        msg["Message-ID"] = message_id
        msg.set_content(text)
        uid = self.dovecot.deliver(MAILBOX_USER, bytes(msg))
        record = {
            "direction": "customer", "time": time.time(), "from_name": name,
            "from": address, "to": COMPANY_ADDRESS, "subject": subject,
            "message_id": message_id, "in_reply_to": None, "text": text, "uid": uid,
        }  # fmt: skip
        self.record(record)
        self.say(f"{name} <{address}> mailed the company: {subject!r}: {text!r}")
        return record

    def collect(self) -> None:
        """Log what the bridge sent through the SMTP server since the last look."""
        new = self.smtp.messages[self.collected :]
        self.collected += len(new)
        for mail in new:
            m = mail.message
            from_name, from_addr = parseaddr(str(m.get("From", "")))
            text = _text_of(m)
            attachments = [p.get_filename() or "file" for p in m.iter_attachments()]
            for rcpt in mail.rcpt_tos:
                self.record({
                    "direction": "company", "time": mail.received_at, "from_name": from_name,
                    "from": from_addr, "to": rcpt, "subject": str(m.get("Subject", "")),
                    "message_id": str(m.get("Message-ID", "")),
                    "in_reply_to": str(m.get("In-Reply-To", "")) or None,
                    "references": str(m.get("References", "")) or None,
                    "text": text, "attachments": attachments,
                })  # fmt: skip
                self.say(f"The company answered {rcpt}: {m.get('Subject')!r}: {text!r}")

    async def watch(self) -> None:
        while True:
            self.collect()
            await asyncio.sleep(0.3)

    # ------------------------------------------------------------------ HTTP

    async def page(self, _request: Any) -> Any:
        from aiohttp import web

        text = PAGE.replace("@NAME@", DEFAULT_NAME).replace("@ADDRESS@", DEFAULT_ADDRESS)
        text = text.replace("@COMPANY@", f"{COMPANY_NAME} &lt;{COMPANY_ADDRESS}&gt;")
        text = text.replace("@SUBJECT@", DEFAULT_SUBJECT)
        return web.Response(text=text, content_type="text/html")

    async def api_messages(self, request: Any) -> Any:
        from aiohttp import web

        self.collect()
        address = request.query.get("address", "").strip().lower()
        mails = [
            r
            for r in self.log
            if not address or address in (str(r.get("from")).lower(), str(r.get("to")).lower())
        ]
        return web.json_response(
            {"company": COMPANY_ADDRESS, "messages": mails},
            dumps=lambda obj: json.dumps(obj, ensure_ascii=False),
        )

    async def api_send(self, request: Any) -> Any:
        from aiohttp import web

        def refuse(error: str) -> Any:
            return web.json_response({"ok": False, "error": error}, status=400)

        try:
            data = await request.json()
        except ValueError:
            return refuse("send a JSON object")
        if not isinstance(data, dict):
            return refuse("send a JSON object")
        name = str(data.get("name") or "").strip()
        address = str(data.get("address") or "").strip()
        subject = str(data.get("subject") or "").strip()
        text = str(data.get("text") or "").strip()
        if not name:
            return refuse("the name is required")
        if "@" not in address or parseaddr(address)[1] != address or " " in address:
            return refuse(f"{address!r} is not an email address")
        if address.lower() == COMPANY_ADDRESS:
            return refuse("that is the company's own address")
        if not text:
            return refuse("write a text")
        try:
            record = await asyncio.to_thread(
                self.customer_mail, name, address, subject or DEFAULT_SUBJECT, text
            )
        except Exception as e:  # noqa: BLE001 - report it to the page
            return web.json_response({"ok": False, "error": f"delivery failed: {e}"}, status=502)
        return web.json_response({"ok": True, **record})


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    state = load_state()
    demo = DemoMail(state, Path(args.log) if args.log else None, args.quiet)
    await asyncio.to_thread(demo.dovecot.start)
    try:
        if demo.dovecot._proc is not None:
            DOVECOT_PID.write_text(f"{demo.dovecot._proc.pid}\n")
        await demo.smtp.astart()
        app = web.Application()
        app.router.add_get("/", demo.page)
        app.router.add_get("/api/messages", demo.api_messages)
        app.router.add_post("/api/send", demo.api_send)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, state["mail_port"]).start()
        demo.say(
            f"Mail servers up: the support mailbox ({MAILBOX_USER}) on IMAP "
            f"{LOOPBACK}:{state['imap_port']}, outgoing mail captured on SMTP "
            f"{LOOPBACK}:{state['smtp_port']}; the customer page on {mail_url(state)}"
        )
        watcher = asyncio.create_task(demo.watch())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        watcher.cancel()
        demo.collect()
        await runner.cleanup()
        await demo.smtp.astop()
    finally:
        await asyncio.to_thread(demo.dovecot.stop)
        DOVECOT_PID.unlink(missing_ok=True)
    return 0


# --------------------------------------------------------------------------- the CLI


def send_mail(
    state: dict[str, Any], name: str, address: str, subject: str, text: str
) -> tuple[int, Any]:
    body = {"name": name, "address": address, "subject": subject, "text": text}
    url = f"{mail_url(state)}/api/send"
    return post_json(url, json.dumps(body).encode(), "the demo's mail server")


def cmd_send(args: argparse.Namespace) -> int:
    state = load_state()
    if not state.get("email_enabled"):
        print("The demo runs without email (Dovecot is not installed).", file=sys.stderr)
        return 1
    status, answer = send_mail(state, args.name, args.address, args.subject, args.text)
    return print_send_result(
        status,
        answer,
        lambda a: (
            f"Mailed {COMPANY_ADDRESS} as {args.name} <{args.address}>, subject "
            f"{a['subject']!r}: {a['message_id']}"
        ),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="The demo's email: the support mailbox, its SMTP server and a customer."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("send", help="mail the company as a customer")
    s.add_argument("text", help="the mail's text")
    s.add_argument("--subject", default=DEFAULT_SUBJECT, help="(default: %(default)s)")
    s.add_argument("--name", default=DEFAULT_NAME, help="the From name (%(default)s)")
    s.add_argument("--address", default=DEFAULT_ADDRESS, help="the From address (%(default)s)")
    w = sub.add_parser("serve", help="run Dovecot, the SMTP capture and the customer page")
    w.add_argument("--log", help="also append what happens to this file")
    w.add_argument("--quiet", action="store_true", help="print nothing to the terminal")
    args = parser.parse_args()
    if args.command == "send":
        return cmd_send(args)
    os.umask(0o022)
    return asyncio.run(serve(args))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Email customer (bridge demo)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 15px/1.4 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
        color: #222; }
 h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.5rem; }
 .hint { color: #666; font-size: .9rem; }
 form { display: grid; grid-template-columns: 8rem 1fr; gap: .5rem; align-items: center;
        background: #eef3fb; padding: 1rem; border-radius: .5rem; }
 form textarea { height: 6rem; } form button { grid-column: 2; justify-self: start;
        padding: .4rem 1.2rem; }
 #status { grid-column: 2; font-size: .9rem; color: #666; min-height: 1.2em; }
 .mail { border: 1px solid #ddd; border-radius: .4rem; padding: .6rem .8rem; margin: .5rem 0; }
 .company { background: #fffbe8; } .customer { background: #f6f6f6; }
 .head { font-size: .85rem; color: #555; } .subject { font-weight: 600; }
 .text { white-space: pre-wrap; margin-top: .4rem; }
</style></head><body>
<h1>Write to the company by email</h1>
<p class="hint">The mail goes into the support mailbox (@COMPANY@) on the demo's Dovecot;
the bridge reads it and opens a room for the staff. Their answers go out through the demo's
SMTP server, which keeps them: they show up below.</p>
<form id="f">
 <label for="name">From name</label><input id="name" value="@NAME@" required>
 <label for="address">From address</label><input id="address" value="@ADDRESS@" required>
 <label for="subject">Subject</label><input id="subject" value="@SUBJECT@">
 <label for="text">Text</label><textarea id="text" required></textarea>
 <button>Send</button><div id="status"></div>
</form>
<h2>Mail with <span id="who"></span></h2>
<div id="log"><p class="hint">No mail yet.</p></div>
<script>
const $ = (id) => document.getElementById(id);
function esc(s) { const d = document.createElement("div"); d.textContent = s ?? "";
  return d.innerHTML; }
async function refresh() {
  const address = $("address").value.trim();
  $("who").textContent = address;
  try {
    const r = await fetch("/api/messages?address=" + encodeURIComponent(address));
    const data = await r.json();
    const rows = data.messages.slice().reverse().map((m) => `
      <div class="mail ${m.direction}">
       <div class="head">${m.direction === "company" ? "Reply from" : "Sent by"}
        ${esc(m.from_name)} &lt;${esc(m.from)}&gt; to ${esc(m.to)},
        ${new Date(m.time * 1000).toLocaleString()}</div>
       <div class="subject">${esc(m.subject)}</div>
       ${m.in_reply_to ? `<div class="head">In-Reply-To: ${esc(m.in_reply_to)}</div>` : ""}
       <div class="text">${esc(m.text)}</div>
       ${(m.attachments || []).length ? `<div class="head">Attachments:
         ${m.attachments.map(esc).join(", ")}</div>` : ""}
      </div>`);
    $("log").innerHTML = rows.join("") || '<p class="hint">No mail yet.</p>';
  } catch (e) { /* the demo is stopping */ }
}
$("f").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("status").textContent = "sending...";
  const body = { name: $("name").value, address: $("address").value,
                 subject: $("subject").value, text: $("text").value };
  const r = await fetch("/api/send", { method: "POST", body: JSON.stringify(body),
                                       headers: { "Content-Type": "application/json" } });
  const a = await r.json();
  if (a.ok) { $("status").textContent = "delivered to the support mailbox: " + a.message_id;
              $("text").value = ""; }
  else { $("status").textContent = "not sent: " + a.error; }
  refresh();
});
$("address").addEventListener("change", refresh);
refresh();
setInterval(refresh, 2000);
</script>
</body></html>
"""


if __name__ == "__main__":
    sys.exit(main())
