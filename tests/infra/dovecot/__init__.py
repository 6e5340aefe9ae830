"""A throwaway Dovecot IMAP server on loopback for tests (no Docker, no system service).

Usage::

    with dovecot_server() as imap:                 # write config + cert, start, stop + delete
        imap.add_user("alice", "secret")           # before or after start
        uid = imap.deliver("alice", raw_bytes)     # IMAP APPEND as alice; returns the new UID
        imap.host, imap.imap_port, imap.imaps_port # plain IMAP (STARTTLS offered) and IMAPS
        imap.set_uidvalidity("alice", "INBOX", 4242)
        imap.restart()                             # same ports, same mail; clients dropped

The master runs as a child process (``dovecot -F -c <config>``) with a config written into
its own temporary directory -- ``/etc/dovecot`` and the system service are never touched.
It listens on 127.0.0.1 only, on free ports; logins are plain-text passwords from a
passwd-file (``disable_plaintext_auth = no``: tests log in without TLS on loopback); mail is
in maildirs under the directory; the TLS certificate is self-signed and generated at start
(see :func:`make_self_signed_cert`).

Users.  As root (CI) Dovecot's own privilege separation is kept: login processes run as
``dovenull``, internal ones as ``dovecot`` (both created by Debian's ``dovecot-core``), and
mail is accessed as an unprivileged mail user (``nobody`` by default) that owns the mail
directory.  As a normal user every process runs as that user (Dovecot's "rootless" mode).
"""

from ..tls import make_self_signed_cert
from .config import DovecotError, find_dovecot
from .server import DovecotServer, async_dovecot_server, dovecot_server

__all__ = [
    "DovecotError",
    "DovecotServer",
    "async_dovecot_server",
    "dovecot_server",
    "find_dovecot",
    "make_self_signed_cert",
]
