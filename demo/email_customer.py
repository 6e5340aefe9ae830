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
address, subject, text; below it, the company's replies, refreshing itself, their links
clickable, so that a confirmation mail's link opens the bridge's confirm page; and a link to the
bridge's sign-up form of the newsletter) and a small API that the page and ``send`` use: a
customer's mail is put into the support mailbox with IMAP APPEND, as a mail server delivering
it would. The mails both ways are kept in ``demo-data/email-mail.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any

import page
from common import DATA, LOOPBACK, JsonLines, load_state, newsletter_form_url
from page import CustomerPage, Refused, html, json_answer, render

MAIL_LOG = DATA / "email-mail.jsonl"
DOVECOT_DIR = DATA / "email" / "dovecot"
DOVECOT_PID = DATA / "email-dovecot.pid"
MAILBOX_USER = "support"
COMPANY_ADDRESS = "support@demo.test"
SALES_ADDRESS = "sales@demo.test"
COMPANY_ADDRESSES = (COMPANY_ADDRESS, SALES_ADDRESS)
"""The company's addresses, all delivered to the support mailbox."""
COMPANY_NAME = "Demo Company Support"
DEFAULT_NAME = "Erika Mustermann"
DEFAULT_ADDRESS = "erika@customer.test"
DEFAULT_SUBJECT = "A question"


def mail_url(state: dict[str, Any]) -> str:
    return f"http://{LOOPBACK}:{state['mail_port']}"


STORE = JsonLines(MAIL_LOG)


def _text_of(message: Any) -> str:
    try:
        body = message.get_body(("plain",))
        if body is not None:
            return str(body.get_content()).strip()
        body = message.get_body(("html",))
        return str(body.get_content()).strip() if body is not None else ""
    except (KeyError, LookupError, ValueError):
        return ""


class DemoMail(CustomerPage):
    """Dovecot, the SMTP capture, the mail log, the page and terminal lines."""

    def __init__(self, state: dict[str, Any], args: argparse.Namespace) -> None:
        from tests.infra.dovecot import DovecotServer
        from tests.infra.smtp_capture import SmtpCapture

        super().__init__(state, args, STORE, None)
        self.dovecot = DovecotServer(DOVECOT_DIR, imap_port=state["imap_port"])
        self.dovecot.add_user(MAILBOX_USER, state["email_password"])
        self.smtp = SmtpCapture(
            port=state["smtp_port"], credentials={MAILBOX_USER: state["email_password"]}
        )
        self.collected = 0

    # ------------------------------------------------------------------ both ways

    def customer_mail(
        self, name: str, address: str, subject: str, text: str, to: str = COMPANY_ADDRESS
    ) -> dict[str, Any]:
        """Put a customer's mail to ``to`` (one of the company's addresses, all delivered to
        the support mailbox) into that mailbox (IMAP APPEND, as delivery would)."""
        msg = EmailMessage()
        msg["From"] = formataddr((name, address))
        msg["To"] = formataddr((COMPANY_NAME, to))
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=True)
        message_id = make_msgid(domain=address.rpartition("@")[2] or "customer.test")
        msg["Message-ID"] = message_id
        msg.set_content(text)
        uid = self.dovecot.deliver(MAILBOX_USER, bytes(msg))
        record = {
            "direction": "customer", "time": time.time(), "from_name": name,
            "from": address, "to": to, "subject": subject,
            "message_id": message_id, "in_reply_to": None, "text": text, "uid": uid,
        }  # fmt: skip
        self.record(record)
        self.say(f"{name} <{address}> mailed {to}: {subject!r}: {text!r}")
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
                    "auto_submitted": str(m.get("Auto-Submitted", "")) or None,
                    "list_unsubscribe": str(m.get("List-Unsubscribe", "")) or None,
                    "list_unsubscribe_post": str(m.get("List-Unsubscribe-Post", "")) or None,
                    "text": text, "attachments": attachments,
                })  # fmt: skip
                self.say(f"The company answered {rcpt}: {m.get('Subject')!r}: {text!r}")

    async def watch(self) -> None:
        while True:
            self.collect()
            await asyncio.sleep(0.3)

    # ------------------------------------------------------------------ HTTP

    def render_page(self) -> str:
        return render(
            PAGE, NAME=DEFAULT_NAME, ADDRESS=DEFAULT_ADDRESS,
            COMPANY=f"{COMPANY_NAME} &lt;{COMPANY_ADDRESS}&gt;", SUBJECT=DEFAULT_SUBJECT,
            FORM=newsletter_form_url(self.state),
        )  # fmt: skip

    async def api_messages(self, request: Any) -> Any:
        self.collect()
        address = request.query.get("address", "").strip().lower()
        mails = [
            r
            for r in self.log
            if not address or address in (str(r.get("from")).lower(), str(r.get("to")).lower())
        ]
        return json_answer({"company": COMPANY_ADDRESS, "messages": mails})

    async def send(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        name = str(data.get("name") or "").strip()
        address = str(data.get("address") or "").strip()
        subject = str(data.get("subject") or "").strip()
        text = str(data.get("text") or "").strip()
        to = str(data.get("to") or COMPANY_ADDRESS).strip().lower()
        if to not in COMPANY_ADDRESSES:
            raise Refused(f"the company's addresses are {', '.join(COMPANY_ADDRESSES)}")
        if not name:
            raise Refused("the name is required")
        if "@" not in address or parseaddr(address)[1] != address or " " in address:
            raise Refused(f"{address!r} is not an email address")
        if address.lower() in COMPANY_ADDRESSES:
            raise Refused("that is the company's own address")
        if not text:
            raise Refused("write a text")
        try:
            record = await asyncio.to_thread(
                self.customer_mail, name, address, subject or DEFAULT_SUBJECT, text, to
            )
        except Exception as e:  # noqa: BLE001 - report it to the page
            return {"ok": False, "error": f"delivery failed: {e}"}, 502
        return {"ok": True, **record}, 200


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    os.umask(0o022)
    state = load_state()
    demo = DemoMail(state, args)
    await asyncio.to_thread(demo.dovecot.start)
    try:
        if demo.dovecot.pid is not None:
            DOVECOT_PID.write_text(f"{demo.dovecot.pid}\n")
        await demo.smtp.astart()
        app = web.Application()
        demo.add_routes(app, ready=None)
        runner = await page.start_site(app, state["mail_port"], shutdown_timeout=1.0)
        demo.say(
            f"Mail servers up: the support mailbox ({MAILBOX_USER}) on IMAP "
            f"{LOOPBACK}:{state['imap_port']}, outgoing mail captured on SMTP "
            f"{LOOPBACK}:{state['smtp_port']}; the customer page on {mail_url(state)}"
        )
        await page.until_stopped(demo.watch())
        demo.collect()
        await runner.cleanup()
        await demo.smtp.astop()
    finally:
        await asyncio.to_thread(demo.dovecot.stop)
        DOVECOT_PID.unlink(missing_ok=True)
    return 0


# --------------------------------------------------------------------------- the CLI


def cmd_send(args: argparse.Namespace) -> int:
    state = load_state()
    if not state.get("email_enabled"):
        print("The demo runs without email (Dovecot is not installed).", file=sys.stderr)
        return 1
    return page.send_command(
        mail_url(state),
        {
            "name": args.name,
            "address": args.address,
            "subject": args.subject,
            "text": args.text,
            "to": args.to,
        },
        "the demo's mail server",
        lambda a: (
            f"Mailed {a['to']} as {args.name} <{args.address}>, subject "
            f"{a['subject']!r}: {a['message_id']}"
        ),
    )


def send_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("text", help="the mail's text")
    s.add_argument("--subject", default=DEFAULT_SUBJECT, help="(default: %(default)s)")
    s.add_argument("--name", default=DEFAULT_NAME, help="the From name (%(default)s)")
    s.add_argument("--address", default=DEFAULT_ADDRESS, help="the From address (%(default)s)")
    s.add_argument(
        "--to", default=COMPANY_ADDRESS, choices=COMPANY_ADDRESSES,
        help="the company's address written to (%(default)s; sales@ goes to the sales team)",
    )  # fmt: skip


def main() -> int:
    return page.main(
        "The demo's email: the support mailbox, its SMTP server and a customer.",
        send=cmd_send,
        send_help="mail the company as a customer",
        send_arguments=send_arguments,
        serve=serve,
        serve_help="run Dovecot, the SMTP capture and the customer page",
    )


PAGE = html(
    "Email customer (bridge demo)",
    "#eef3fb",
    """\
 h2 { font-size: 1.05rem; margin-top: 1.5rem; }
 form textarea { height: 6rem; }
 .mail { border: 1px solid #ddd; border-radius: .4rem; padding: .6rem .8rem; margin: .5rem 0; }
 .company { background: #fffbe8; } .customer { background: #f6f6f6; }
 .head { font-size: .85rem; color: #555; } .subject { font-weight: 600; }
 .text { white-space: pre-wrap; margin-top: .4rem; }
""",
    """\
<h1>Write to the company by email</h1>
<p class="hint">The mail goes into the support mailbox (@COMPANY@) on the demo's Dovecot;
the bridge reads it and opens a room for the staff. Their answers go out through the demo's
SMTP server, which keeps them: they show up below.</p>
<p class="hint">The newsletter: sign up with the address below on the bridge's
<a href="@FORM@" target="_blank">sign-up form</a>; the confirmation mail shows up here, and its
link opens the page whose button confirms. Broadcasts come with an unsubscribe link.</p>
<form id="f">
 <label for="name">From name</label><input id="name" value="@NAME@" required>
 <label for="address">From address</label><input id="address" value="@ADDRESS@" required>
 <label for="subject">Subject</label><input id="subject" value="@SUBJECT@">
 <label for="text">Text</label><textarea id="text" required></textarea>
 <button>Send</button><div id="status"></div>
</form>
<h2>Mail with <span id="who"></span></h2>
<div id="log"><p class="hint">No mail yet.</p></div>
""",
    """\
function esc(s) { const d = document.createElement("div"); d.textContent = s ?? "";
  return d.innerHTML; }
// The text with its http(s) links clickable (a confirmation link opens in a new tab).
function linked(s) {
  return (s ?? "").split(/(https?:\\/\\/[^\\s<>"]+)/).map((part, i) => i % 2
    ? `<a href="${esc(part)}" target="_blank" rel="noopener">${esc(part)}</a>` : esc(part),
  ).join("");
}
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
       <div class="text">${linked(m.text)}</div>
       ${m.list_unsubscribe ? `<div class="head">List-Unsubscribe:
         ${linked(m.list_unsubscribe)}</div>` : ""}
       ${(m.attachments || []).length ? `<div class="head">Attachments:
         ${m.attachments.map(esc).join(", ")}</div>` : ""}
      </div>`);
    $("log").innerHTML = rows.join("") || '<p class="hint">No mail yet.</p>';
  } catch (e) { /* the demo is stopping */ }
}
onSubmit(() => sendForm(
  { name: $("name").value, address: $("address").value, subject: $("subject").value,
    text: $("text").value },
  (a) => "delivered to the support mailbox: " + a.message_id,
));
poll(2000, "address");
""",
)


if __name__ == "__main__":
    sys.exit(main())
