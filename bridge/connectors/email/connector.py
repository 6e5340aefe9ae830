"""The email connector: one company mailbox (IMAP or LMTP in, SMTP out) as conversations."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import html as html_lib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...connector import (
    BridgeHost,
    NetworkConnector,
    PermanentDeliveryError,
    Spooler,
    StateKind,
)
from ...events import (
    MatrixMessage,
    RemoteAttachment,
    RemoteEvent,
    RemoteMessage,
    SentMessage,
)
from ...logsafe import pii
from ...media import MediaFile
from ...tasks import cancel_and_wait
from ...types import AccountID, MessageID, RemoteChatID
from .auth import check_sender
from .capabilities import EMAIL_CAPABILITIES, capabilities_for
from .config import EmailConfig, parse_config
from .imap import IMAPError, Mailbox, open_mailbox
from .lmtp import LmtpListener
from .parse import (
    ParsedMail,
    content_digest,
    mail_attachments,
    parse_mail,
    to_remote_event,
    unreadable_mail,
)
from .parts import PartReader, verified
from .sections import section_body
from .smtp import ADDRESS, build_reply, send
from .transfer import DECODED

PART_PREFIX = "imap:"
SPOOL_PREFIX = "spool:"
"""Parts of mail pushed over LMTP, read from the raw mail the host spooled."""
INLINE_PREFIX = "inline:"
"""Parts of mail pushed over LMTP to a host without a spool travel in the event itself."""
CONNECT_TIMEOUT = 20.0
PARSE_TIMEOUT = 60.0
"""Seconds a mail may take to read before it is bridged from its headers only."""
MAX_ATTEMPTS = 5
"""Hand-overs of one mail that fail before it is quarantined (bridged as a notice)."""
NO_SENDER = "no-sender"
NO_SENDER_NAME = "(no sender)"
NO_SUBJECT = "(no subject)"
UNVERIFIED = "unverified"
"""Refused unverified mail goes to ``unverified/<message id>``, never to a contact's room."""
UNVERIFIED_WARNING = "⚠️ Sender not verified by {server} ({detail}): it may be forged."
DIGESTS = "digests"
"""Portal metadata: Message-ID -> content digest of the mails bridged there (both shortened
to 16 hex digits: the metadata stays small whatever the ids)."""
MAX_DIGESTS_PER_CHAT = 200
MAX_DIGESTS = 2000
_PARSER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail-parser")
"""Mail is parsed here, off the event loop."""


def _part_spec(attachment: RemoteAttachment) -> tuple[str, str, str] | None:
    """``(section, transfer encoding, sha256)`` of a part recorded when its mail was parsed,
    if it can be fetched alone (an event queued before parts were recorded has none)."""
    extra = attachment.extra
    section, digest = extra.get("section"), extra.get("sha256")
    encoding = extra.get("encoding", "")
    if isinstance(section, str) and isinstance(encoding, str) and isinstance(digest, str):
        return (section, encoding, digest) if encoding in DECODED else None
    return None


def _short(message_id: str) -> str:
    return hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()[:16]


class EmailConnector(NetworkConnector):
    """Each mail thread of a contact (or each contact) is a portal; staff replies go out as
    properly threaded mail. Mail has no edits, deletions or reactions: the core says so."""

    channel = "email"
    title = "Email"
    capabilities = EMAIL_CAPABILITIES
    config: EmailConfig

    def __init__(self, account_id: AccountID, config: EmailConfig, host: BridgeHost) -> None:
        super().__init__(account_id, config, host)
        self.capabilities = capabilities_for(config)
        self.title = config.title
        self.public_address = config.from_address
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.lmtp: LmtpListener | None = None
        self._logged_in = False
        self.parse_timeout = PARSE_TIMEOUT
        self._digests: dict[str, str] = {}
        """Content digests of the latest mails (the core may not have stored them yet)."""
        self._parts = PartReader(config.imap, config.folder) if config.imap else None
        self._pushed_failures: dict[str, int] = {}

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], key: str) -> EmailConfig:
        return parse_config(raw, key)

    async def start(self) -> None:
        self._connected = asyncio.Event()
        if self.config.lmtp is not None:
            self.lmtp = LmtpListener(self.config.lmtp, self._accept_pushed)
            try:
                await self.lmtp.start()
            except OSError as e:
                self.lmtp = None
                self.set_state(StateKind.DISCONNECTED, f"cannot listen for LMTP: {e}")
                self.host.log.error("Cannot listen for LMTP: %s", e)
        if self.config.imap is None:
            if self.lmtp is not None:
                self.set_state(StateKind.CONNECTED, f"LMTP on port {self.lmtp.port}")
            return
        self._task = asyncio.create_task(self._run(), name=f"email:{self.account_id}")
        # Report the mailbox state when start() returns; an unreachable server is not fatal:
        # the loop keeps trying and the state says why.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT)

    async def stop(self) -> None:
        if self.lmtp is not None:
            await self.lmtp.stop()
            self.lmtp = None
        await cancel_and_wait([self._task])
        self._task = None
        if self._parts is not None:
            await self._parts.aclose()
        self.set_state(StateKind.STOPPED)

    # ------------------------------------------------------------------ mail -> Matrix

    async def _run(self) -> None:
        delay = 1.0
        while True:
            self._logged_in = False
            try:
                await self._read_mailbox()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self._logged_in:
                    delay = 1.0  # the session worked for a while: this is a new outage
                self.set_state(StateKind.DISCONNECTED, str(e) or type(e).__name__)
                self._connected.set()  # start() need not wait any longer: the state says why
                self.host.log.warning("Mailbox not reachable (%s); retrying in %.0fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)

    async def _read_mailbox(self) -> None:
        assert self.config.imap is not None
        async with open_mailbox(self.config.imap, self.config.folder) as box:
            self._logged_in = True
            self.set_state(StateKind.CONNECTED, f"{self.config.imap.user}, {self.config.folder}")
            self._connected.set()
            data = await self.host.load_data()
            if data.get("uidvalidity") != box.uidvalidity:
                # The server renumbered the folder: read it again from the start; mails
                # bridged before are recognised by their Message-ID and not repeated.
                if data.get("uidvalidity") is not None:
                    self.host.log.warning("UIDVALIDITY changed: rereading %s", self.config.folder)
                data = {**data, "uidvalidity": box.uidvalidity, "last_uid": 0, "failures": {}}
                await self.host.save_data(data)
            while True:
                for uid in await box.uids_after(int(data.get("last_uid", 0))):
                    data = await self._take_uid(box, uid, data)
                await box.wait(self.config.idle_timeout, self.config.poll_interval)

    async def _take_uid(self, box: Mailbox, uid: int, data: dict[str, Any]) -> dict[str, Any]:
        """Bridge mail ``uid`` and advance ``last_uid``. A mail that fails ``MAX_ATTEMPTS``
        times (whatever its fault) is quarantined: a notice with the original attached takes
        its place, so one mail cannot block the folder. If even that notice cannot be handed
        over, the host is down: the error goes up and the mail is tried again later."""
        prefix = f"{PART_PREFIX}{box.uidvalidity}:{uid}:"
        failures: dict[str, int] = dict(data.get("failures") or {})
        raw: bytes | None = None
        try:
            raw = await box.fetch(uid)
            if raw is not None:
                await self._handle_mail(raw, prefix)
        except (asyncio.CancelledError, IMAPError, OSError, TimeoutError):
            raise  # the session, not the mail: reconnect and try again
        except Exception as e:
            count = failures.get(str(uid), 0) + 1
            self.host.log.warning("Mail %d could not be handed over (%d): %s", uid, count, pii(e))
            if count < MAX_ATTEMPTS:
                await self.host.save_data({**data, "failures": {**failures, str(uid): count}})
                raise
            await self._quarantine(raw, prefix, f"{type(e).__name__}: {e}")
        failures.pop(str(uid), None)
        data = {**data, "last_uid": uid, "failures": failures}
        await self.host.save_data(data)
        return data

    async def _quarantine(
        self, raw: bytes | None, imap_prefix: str | None, error: str, spooled: str | None = None
    ) -> bool:
        """A notice, with the original attached, for a mail that could not be bridged."""
        mail = unreadable_mail(raw or b"", f"it could not be bridged ({error[:300]})")
        chat = self._own_chat(mail)
        event = to_remote_event(
            mail,
            chat_id=chat,
            chat_name=self._chat_name(mail),
            eml_attachment=raw is not None,
            own_addresses=self.config.addresses,
        )
        assert isinstance(event, RemoteMessage)  # headers only: never a delivery failure
        event = self._with_sources(event, mail, imap_prefix, spooled)
        self.host.log.error(
            "Quarantined mail %s in %s: %s", pii(mail.message_id), pii(chat), pii(error)
        )
        return await self.host.handle_remote_event(event)

    async def _accept_pushed(self, raw: bytes) -> None:
        """A mail the MTA pushed over LMTP; returns once the core committed it. The raw mail is
        spooled once in the core's database (where the host offers it), the queued event only
        points at it. An error makes the MTA try again later; a mail that failed
        ``MAX_ATTEMPTS`` times is quarantined."""
        key = hashlib.sha256(raw).hexdigest()
        spooler = self.host if isinstance(self.host, Spooler) else None
        spooled = await spooler.spool(raw) if spooler is not None else None
        recorded = False
        try:
            try:
                recorded = await self._handle_mail(raw, None, spooled)
            except Exception as e:
                count = self._pushed_failures.pop(key, 0) + 1
                if count < MAX_ATTEMPTS:
                    self._pushed_failures[key] = count
                    while len(self._pushed_failures) > MAX_DIGESTS:
                        del self._pushed_failures[next(iter(self._pushed_failures))]
                    raise
                error = f"{type(e).__name__}: {e}"
                recorded = await self._quarantine(raw, None, error, spooled)
            self._pushed_failures.pop(key, None)
        finally:
            if spooler is not None and spooled is not None and not recorded:
                # Refused, or a repeat (whose first delivery's event has a copy of its own).
                with contextlib.suppress(Exception):
                    await spooler.unspool(spooled)

    async def _parse(self, raw: bytes) -> ParsedMail:
        """``parse_mail`` in a worker thread, so that no mail holds up the event loop; a mail
        that takes longer than ``parse_timeout`` is bridged from its headers only. (A thread
        cannot be stopped, but ``parse_mail`` bounds its own work, so it does end.)"""
        future = asyncio.get_running_loop().run_in_executor(_PARSER, parse_mail, raw)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.parse_timeout)
        except TimeoutError:
            self.host.log.warning("Reading a mail took over %.0fs", self.parse_timeout)
            return unreadable_mail(raw, "reading it took too long")

    async def _handle_mail(
        self, raw: bytes, imap_prefix: str | None, spooled: str | None = None
    ) -> bool:
        """Bridge one mail; False if the host had it already. Its parts are fetched again
        later from IMAP (``imap_prefix``, e.g. ``imap:<uidvalidity>:<uid>:``) or from the
        host's spool (``spooled``, the key of the raw mail), else carried in the event."""
        mail = await self._parse(raw)
        event = await self._event_for(mail)
        if isinstance(event, RemoteMessage):
            event = self._with_sources(event, mail, imap_prefix, spooled)
        return await self.host.handle_remote_event(event)

    def _with_sources(
        self,
        event: RemoteMessage,
        mail: ParsedMail,
        imap_prefix: str | None,
        spooled: str | None = None,
    ) -> RemoteMessage:
        if spooled is not None and imap_prefix is None:
            attachments = tuple(
                dataclasses.replace(
                    a,
                    url=f"{SPOOL_PREFIX}{'eml' if a.extra.get('original') else a.extra['index']}",
                    extra={**a.extra, "spool": spooled},
                )
                for a in event.attachments
            )
            metadata = {**event.metadata, "spool": [spooled]}
            return dataclasses.replace(event, attachments=attachments, metadata=metadata)
        attachments = tuple(self._part_source(a, mail, imap_prefix) for a in event.attachments)
        return dataclasses.replace(event, attachments=attachments)

    def _chat_name(self, mail: ParsedMail) -> str:
        return mail.from_name or mail.from_address or NO_SENDER_NAME

    def _own_chat(self, mail: ParsedMail) -> RemoteChatID:
        """A conversation of the mail's own (a contact's one in contact threading)."""
        contact = mail.from_address or NO_SENDER
        if self.config.threading == "contact" and mail.from_address:
            return RemoteChatID(contact)
        return RemoteChatID(f"{contact}/{mail.message_id}")

    async def _event_for(self, mail: ParsedMail) -> RemoteEvent:
        contact = mail.from_address
        if mail.is_bounce:
            original = mail.bounce_original_message_id
            chat = await self.host.find_chat([original]) if original else None
            if chat is not None and await self._bounce_matches(mail, chat):
                return to_remote_event(mail, chat_id=chat, chat_name=contact)
            # A report about a message the bridge did not send to the address that failed
            # (unknown, or a forged bounce): shown on its own, never as a failure of another.
            self.host.log.info("Bounce for an unknown message %s", pii(original))
            mail = dataclasses.replace(mail, bounce_original_message_id=None)
            chat = self._own_chat(mail)
            own = self.config.addresses
            return to_remote_event(mail, chat_id=chat, chat_name=contact, own_addresses=own)
        if not contact or self.config.threading == "contact":
            chat = self._own_chat(mail)
        else:
            found = await self.host.find_chat([*mail.references, *mail.in_reply_to])
            # Threads are scoped to the contact: a reply from someone else starts their own.
            if found is not None and found.split("/", 1)[0] == contact:
                chat = found
            else:
                chat = self._own_chat(mail)
        check = None
        if self.config.authserv_id is not None and self.config.unauthenticated != "accept":
            check = check_sender(list(mail.auth_results), self.config.authserv_id)
            if not check.passed and self.config.unauthenticated == "refuse":
                self.host.log.warning(
                    "Refused unverified mail %s: %s", pii(mail.message_id), pii(check)
                )
                reason = f"the mail server did not verify its sender ({check.detail})"
                mail = dataclasses.replace(mail, unreadable=reason)
                chat = RemoteChatID(f"{UNVERIFIED}/{mail.message_id}")
        event = to_remote_event(
            mail,
            chat_id=chat,
            chat_name=self._chat_name(mail),
            own_addresses=self.config.addresses,
        )
        assert isinstance(event, RemoteMessage)
        if check is not None and not check.passed and self.config.unauthenticated == "flag":
            warning = UNVERIFIED_WARNING.format(
                server=self.config.authserv_id, detail=check.detail
            )
            html = f"<p>{html_lib.escape(warning)}</p>{event.html}" if event.html else None
            event = dataclasses.replace(event, text=f"{warning}\n\n{event.text}", html=html)
        event = await self._unique(event, mail)
        # The subject is the room's topic.
        topic = mail.subject.strip() or NO_SUBJECT
        return dataclasses.replace(event, chat=dataclasses.replace(event.chat, topic=topic))

    async def _bounce_matches(self, mail: ParsedMail, chat: RemoteChatID) -> bool:
        """Whether the bounce is about a mail the bridge sent to this conversation's contact:
        a Message-ID of the bridge's domain, and the contact among the failed recipients."""
        original = (mail.bounce_original_message_id or "").lower()
        domain = self.config.from_address.rsplit("@", 1)[1].lower()
        contact = (await self.host.portal_metadata(chat)).get("contact")
        return (
            original.endswith(f"@{domain}")
            and isinstance(contact, str)
            and contact.lower() in mail.bounce_recipients
        )

    async def _unique(self, event: RemoteMessage, mail: ParsedMail) -> RemoteMessage:
        """``event`` under its Message-ID if that is new or a real repeat (same content); a
        different mail that reuses a Message-ID seen before gets an id of its own."""
        digest = content_digest(mail)[:16]
        mid = mail.message_id
        known = self._digests.get(_short(mid))
        if known is None:
            chat = await self.host.find_chat([mid])
            if chat is not None:
                stored = (await self.host.portal_metadata(chat)).get(DIGESTS)
                known = stored.get(_short(mid)) if isinstance(stored, dict) else None
        if known is not None and known != digest:
            self.host.log.warning("Mail %s reuses a known Message-ID with other content", pii(mid))
            mid = f"{mid}#{digest}"
            event = dataclasses.replace(event, message_id=MessageID(mid))
        self._digests[_short(mid)] = digest
        while len(self._digests) > MAX_DIGESTS:
            del self._digests[next(iter(self._digests))]
        meta = await self.host.portal_metadata(event.chat.id)
        stored = meta.get(DIGESTS)
        digests = dict(stored) if isinstance(stored, dict) else {}
        digests.pop(_short(mid), None)
        digests[_short(mid)] = digest
        digests = dict(list(digests.items())[-MAX_DIGESTS_PER_CHAT:])
        portal = {**event.metadata.get("portal", {}), DIGESTS: digests}
        return dataclasses.replace(event, metadata={**event.metadata, "portal": portal})

    @staticmethod
    def _part_source(
        attachment: RemoteAttachment, mail: ParsedMail, imap_prefix: str | None
    ) -> RemoteAttachment:
        original = bool(attachment.extra.get("original"))
        index = "eml" if original else str(int(attachment.extra.get("index", 0)))
        if imap_prefix is not None:
            return dataclasses.replace(attachment, url=f"{imap_prefix}{index}")
        data = mail.raw if original else mail.attachments[int(index)].data
        extra = {**attachment.extra, "data": base64.b64encode(data).decode()}
        return dataclasses.replace(attachment, url=f"{INLINE_PREFIX}{index}", extra=extra)

    async def download_attachment(
        self, attachment: RemoteAttachment
    ) -> tuple[bytes | MediaFile, str]:
        if attachment.url.startswith(SPOOL_PREFIX):
            return await self._spooled_part(attachment)
        if attachment.url.startswith(INLINE_PREFIX):
            try:
                data = base64.b64decode(attachment.extra["data"], validate=True)
            except (KeyError, TypeError, ValueError) as e:
                raise PermanentDeliveryError("the pushed mail part is missing") from e
            return data, attachment.mimetype or "application/octet-stream"
        if self._parts is None or not attachment.url.startswith(PART_PREFIX):
            raise PermanentDeliveryError(f"not a stored mail part: {attachment.url}")
        try:
            validity, uid, index = attachment.url[len(PART_PREFIX) :].split(":")
            key = (int(validity), int(uid))
        except ValueError as e:
            raise PermanentDeliveryError(f"not a stored mail part: {attachment.url}") from e
        original = index == "eml"
        mimetype = "message/rfc822" if original else attachment.mimetype
        mimetype = mimetype or "application/octet-stream"
        spec = _part_spec(attachment)
        if spec is not None:
            section, encoding, digest = spec
            media = await self._parts.part(key, section, encoding, digest, attachment.size)
            if media is not None:
                media.mimetype = mimetype
                return media, mimetype
            self.host.log.warning(
                "Part %s of mail %d is not as parsed: reading the whole mail", section, key[1]
            )
        raw, parts = await self._parts.whole(key)
        if original or (index.isdigit() and int(index) == len(parts)):  # numbered before
            return MediaFile.from_bytes(raw, "message/rfc822"), "message/rfc822"
        if index.isdigit() and int(index) < len(parts):
            part = parts[int(index)]
            return MediaFile.from_bytes(part.data, part.mimetype), part.mimetype
        raise PermanentDeliveryError(f"the mail has no part {index}")

    async def _spooled_part(self, attachment: RemoteAttachment) -> tuple[MediaFile, str]:
        """A part of a pushed mail, from the raw mail the host spooled, read in chunks: the
        original as it is, another part found by its section as the mail streams by (or, if
        the mail is split otherwise than the parser did, from the mail parsed again)."""
        key, index = attachment.extra.get("spool"), attachment.url[len(SPOOL_PREFIX) :]
        if not isinstance(self.host, Spooler) or not isinstance(key, str):
            raise PermanentDeliveryError(f"not a stored mail part: {attachment.url}")
        raw = await self.host.open_spooled(key, "message/rfc822")
        if raw is None:
            raise PermanentDeliveryError("the pushed mail is no longer stored")
        if index == "eml":
            return raw, "message/rfc822"
        mimetype = attachment.mimetype or "application/octet-stream"
        with raw:
            spec = _part_spec(attachment)
            if spec is not None:
                section, encoding, digest = spec
                try:
                    part = section_body(raw.chunks(), section)
                    media = await verified(part, encoding, digest, attachment.size)
                except ValueError:  # hostile part headers: parsed again below
                    media = None
                if media is not None:
                    media.mimetype = mimetype
                    return media, mimetype
                self.host.log.warning("Part %s of a pushed mail is not as parsed", section)
            data = await raw.read()
        loop = asyncio.get_running_loop()
        parts = await loop.run_in_executor(_PARSER, mail_attachments, data)
        if not index.isdigit() or int(index) >= len(parts):
            raise PermanentDeliveryError(f"the mail has no part {index}")
        found = parts[int(index)]
        return MediaFile.from_bytes(found.data, found.mimetype), found.mimetype

    # ------------------------------------------------------------------ Matrix -> mail

    def chat_for_address(self, address: str) -> RemoteChatID:
        """The chat of a mail the bridge starts to ``address`` (lower-cased, as addresses of
        received mail are): the address itself. With ``threading: contact`` that is the
        contact's conversation; with ``thread`` a chat of its own (threads are
        ``<address>/<message id>``), answered as a new mail. ValueError when it is no address."""
        text = address.strip().lower()
        if not ADDRESS.fullmatch(text) or "/" in text:
            raise ValueError(f"{address!r} is not an e-mail address")
        return RemoteChatID(text)

    async def send_message(self, msg: MatrixMessage) -> SentMessage:
        meta = await self.host.portal_metadata(msg.portal.chat)
        chat = msg.portal.chat
        if "contact" not in meta and ADDRESS.fullmatch(chat) and "/" not in chat:
            meta = {"contact": chat}  # no conversation yet: a new mail to it
        # The staff member's name is in From:, so the body goes without the prefix.
        text = msg.text[len(msg.prefix) :] if msg.text.startswith(msg.prefix) else msg.text
        html = msg.html
        if html and msg.prefix:
            escaped = html_lib.escape(msg.prefix)
            html = html[len(escaped) :] if html.startswith(escaped) else html
        attachment = None
        if msg.media is not None:
            if msg.media.size and msg.media.size > self.config.max_size:
                raise PermanentDeliveryError(f"{msg.media.filename} is over the mail size limit")
            attachment = (await msg.media.download(), msg.media.mimetype, msg.media.filename)
        mail = build_reply(
            self.config, sender_name=msg.sender_name, meta=meta, text=text, html=html,
            attachment=attachment, source_id=msg.event_id, automatic=msg.automatic,
            headers=msg.headers,
        )  # fmt: skip
        await send(self.config, mail)
        return SentMessage(message_id=MessageID(str(mail["Message-ID"]).strip("<>")))

    async def send_reply(self, msg: MatrixMessage) -> SentMessage:
        return await self.send_message(msg)

    async def send_media(self, msg: MatrixMessage) -> SentMessage:
        return await self.send_message(msg)
