"""Concrete mails for the ``parse_mail`` tests, built as raw bytes: a basic header block, a mixed
mail with every kind of attachment, a bounce, and replies as mail programs quote them."""

from __future__ import annotations

import textwrap


def mail(headers: str, body: str | bytes = "", *, crlf: bool = False) -> bytes:
    """A raw mail from dedented header lines and a body."""
    head = textwrap.dedent(headers).strip("\n") + "\n\n"
    raw = head.encode() + (body.encode() if isinstance(body, str) else body)
    return raw.replace(b"\n", b"\r\n") if crlf else raw


BASIC = """\
    From: Jane Customer <Jane.Customer@Example.COM>
    To: Support <support@company.example>, sales@company.example
    Subject: Order 1234
    Date: Mon, 05 Feb 2024 10:30:00 +0100
    Message-ID: <abc123@mail.example.com>
    """


MIXED = """\
From: a@example.com
Message-ID: <mixed@example.com>
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

See the logo and the document.
--alt
Content-Type: text/html; charset=utf-8

<p>See the logo <img src="cid:logo@x"> and the document.</p>
--alt--
--rel
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-ID: <logo@x>
Content-Disposition: inline; filename="logo.png"

iVBORw0KGgo=
--rel--
--mix
Content-Type: application/pdf
Content-Disposition: attachment; filename*=UTF-8''%D0%B4%D0%BE%D0%BA.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--mix
Content-Type: text/plain; name="=?utf-8?q?Notiz_f=C3=BCr_dich.txt?="
Content-Disposition: attachment

note
--mix
Content-Type: application/octet-stream
Content-Disposition: attachment; filename="../../etc/passwd"

x
--mix
Content-Type: message/rfc822

From: b@example.com
Subject: Forwarded one
Message-ID: <inner@example.com>

inner body
--mix--
"""
MIXED_SECTIONS = ["1.2", "2", "3", "4", "5"]
"""The IMAP body sections of MIXED's attachments."""


DSN = """\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.company.example>
To: support@company.example
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <dsn-1@mx.company.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
    boundary="dsn"

--dsn
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--dsn
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.company.example
X-Postfix-Queue-ID: 4F1E2A
Arrival-Date: Mon,  5 Feb 2024 10:30:00 +0100 (CET)

Final-Recipient: rfc822; customer@example.com
Original-Recipient: rfc822;customer@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--dsn
Content-Description: Undelivered Message Headers
Content-Type: {original_type}

From: support@company.example
To: customer@example.com
Subject: Re: Order 1234
Message-ID: <sent-by-bridge-1@company.example>
{original_body}
--dsn--
"""


GMAIL_TEXT = """\
Thanks, that works for me.

On Mon, Feb 5, 2024 at 10:30 AM Support Team <support@company.example>
wrote:

> Hello Jane,
>
> your order has shipped.
>
"""

GMAIL_HTML = """\
<div dir="ltr">Thanks, that works for me.<div><br></div></div><br>
<div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">On Mon, Feb 5,
2024 at 10:30 AM Support Team
&lt;<a href="mailto:support@company.example">support@company.example</a>&gt; wrote:<br></div>
<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">
Hello Jane,<br>your order has shipped.</blockquote></div>
"""

GMAIL_WRAPPED_TEXT = """\
Sure.

On Mon, Feb 5, 2024 at 10:30 AM Support Team of a Company With a Long Name <
support@company.example> wrote:

> Hello
"""

OUTLOOK_TEXT = """\
Please cancel it.

Best regards
Max

________________________________
From: Support Team <support@company.example>
Sent: Monday, February 5, 2024 10:30 AM
To: Max <max@example.com>
Subject: Order 1234

Hello Max, your order has shipped.
"""

OUTLOOK_HTML = """\
<html><head><style>p.MsoNormal{margin:0}</style></head><body>
<div dir="ltr"><p>Please cancel it.</p></div>
<div id="appendonsend"></div>
<hr style="display:inline-block;width:98%" tabindex="-1">
<div id="divRplyFwdMsg" dir="ltr"><b>From:</b> Support Team<br><b>Sent:</b> Monday</div>
<div>Hello Max, your order has shipped.</div>
</body></html>
"""

OUTLOOK_DESKTOP_HTML = """\
<div class=WordSection1><p class=MsoNormal>Bitte stornieren.<o:p></o:p></p>
<div><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'>
<p class=MsoNormal><b>Von:</b> Support Team &lt;support@company.example&gt;<br>
<b>Gesendet:</b> Montag, 5. Februar 2024 10:30<br><b>An:</b> Max</p></div></div>
<p class=MsoNormal>Hallo Max, Ihre Bestellung ist unterwegs.</p></div>
"""

THUNDERBIRD_HTML = """\
<p>Sounds good.</p>
<div class="moz-signature">-- <br>Jane Customer<br>ACME Inc.</div>
<div class="moz-cite-prefix">On 05.02.24 10:30, Support Team wrote:<br></div>
<blockquote type="cite" cite="mid:1@x">Hello Jane</blockquote>
"""

GERMAN_TEXT = """\
Vielen Dank!

Am 05.02.2024 um 10:30 schrieb Support Team <support@company.example>:
> Hallo Max,
> Ihre Bestellung ist unterwegs.
"""

FRENCH_TEXT = """\
Merci beaucoup.

Le lun. 5 févr. 2024 à 10:30, Support <support@company.example> a écrit :
> Bonjour
"""

ORIGINAL_MESSAGE_TEXT = """\
See below.

-----Original Message-----
From: Support
Subject: x

old text
"""

URSPRUENGLICH_TEXT = """\
Siehe unten.

-------- Ursprüngliche Nachricht --------
Von: Support
"""

SIGNATURE_TEXT = """\
Here is my answer.

-- \nJane Customer
ACME Inc. | +1 555 0100
"""
