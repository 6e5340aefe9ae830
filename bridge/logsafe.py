"""Keeping secrets and personal data out of the log.

Errors are cleaned where they are made: a connector never puts a URL that holds its token into
an error or a delivery reason. ``SecretFilter`` is the second line of defence: installed on every
log handler at start-up, it replaces each configured secret (appservice tokens, bot tokens, app
secrets, passwords, passwords in URLs...) in a record's message, its arguments, its traceback and
its stack trace before any handler formats it.

Personal data is minimal by default: every log call wraps a value that is or may hold a person's
data (a phone number, a mail address, a remote user or chat id, a ghost's Matrix id, a name, a
subject, a message text or id, a file name, an error that echoes input) in ``pii(value)``. It
renders as ``~`` and eight hex digits, an HMAC-SHA-256 of the value under a key drawn at random
when the process starts: lines about the same person share the mark within one run (one log
file), and no one can tell the person from it, not even by hashing candidate phone numbers: the
key is in no file and is gone with the process. An exception keeps its type (``TimeoutError
~3f0c9a1e``). The mark carries no hint (not even a mail's domain: that of a private person is
personal data too); the line around it says what it is. ``log_personal_data: true`` in the
config shows every value in full, for debugging, and the bridge says so with a warning at start.
The value is formatted only when a handler emits the line. Behind the wrapped arguments, the
messages of the exceptions in a traceback are masked the same way (the filter above formats it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
import secrets as _random
from collections.abc import Iterable, Mapping
from typing import Any

from yarl import URL

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6
"""Shorter values are not searched for: they would blank out ordinary words."""

_SECRET_NAME = re.compile(
    r"(?:^|[_.-])(?:token|secret|password|passwd|pass|key|apikey|credentials?)(?:$|[_.-])",
    re.IGNORECASE,
)
_FORMATTER = logging.Formatter()


def is_secret_name(name: str) -> bool:
    """Whether a config key such as ``access_token`` or ``app_secret`` holds a secret."""
    return bool(_SECRET_NAME.search(name))


def secrets_in(value: Any, name: str = "") -> set[str]:
    """The secrets in a config (a dataclass, a mapping or the raw YAML): the strings under
    secret-sounding keys, and the passwords and secret query parameters of URLs anywhere."""
    found: set[str] = set()
    _collect(value, name, found, depth=0)
    return found


def _collect(value: Any, name: str, found: set[str], depth: int) -> None:
    if depth > 20:
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _collect(getattr(value, f.name), f.name, found, depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _collect(item, str(key), found, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _collect(item, name, found, depth + 1)
    elif isinstance(value, URL):
        _collect_url(value, found)
    elif isinstance(value, str):
        if is_secret_name(name):
            _add(found, value)
        if "://" in value or value.startswith(("postgres:", "postgresql:")):
            try:
                _collect_url(URL(value), found)
            except ValueError:
                pass


def _collect_url(url: URL, found: set[str]) -> None:
    for password in (url.password, url.raw_password):
        if password:
            found.add(password)
    for key, item in url.query.items():
        if is_secret_name(key):
            _add(found, item)


def _add(found: set[str], secret: str) -> None:
    found.add(secret)
    # "<bot id>:<secret>" and "user:password": the part after the colon is secret on its own.
    _, colon, rest = secret.partition(":")
    if colon and len(rest) >= MIN_SECRET_LENGTH:
        found.add(rest)


class SecretFilter(logging.Filter):
    """Replaces every known secret in a log record (message, arguments, traceback, stack)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        if new <= self._secrets:
            return
        self._secrets |= new
        # Longest first: a secret that contains another is replaced whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            if record.exc_info[0] is not None and not record.exc_text:
                record.exc_text = format_exception(record.exc_info)
            # Formatters print exc_text when there is no exc_info; with exc_info they could
            # format the exception (and its secrets) afresh.
            record.exc_info = None
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format call: keep its parts, cleaned
            message = f"{record.msg!s} (arguments: {record.args!r})"
        record.msg, record.args = self.redact(message), None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_FILTER = SecretFilter()


def add_secrets(*secrets: str) -> None:
    """Secrets made at run time (a generated webhook secret) join the configured ones."""
    _FILTER.add(*secrets)


def redact(text: str) -> str:
    """``text`` with every known secret replaced."""
    return _FILTER.redact(text)


def install(secrets: Iterable[str]) -> SecretFilter:
    """Redact ``secrets`` (and those added later) on every handler configured so far: the
    root logger's, every named logger's and the last-resort handler."""
    _FILTER.add(*secrets)
    handlers: list[logging.Handler] = list(logging.root.handlers)
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.extend(logger.handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    return _FILTER


# ---------------------------------------------------------------------- personal data

_KEY = _random.token_bytes(32)
_FULL = False


def log_personal_data(full: bool) -> None:
    """Show personal data in full (``True``, for debugging: said in a warning) or masked (the
    default)."""
    global _FULL
    _FULL = full
    if full:
        logging.getLogger("bridge").warning(
            "log_personal_data is on: phone numbers, addresses, names and message texts are "
            "logged in full. This is meant for debugging; turn it off afterwards"
        )


def logs_personal_data() -> bool:
    return _FULL


def mask(value: object) -> str:
    """The mark that stands for ``value`` in this process: ``~`` and eight hex digits."""
    if isinstance(value, BaseException):
        text = _message(value)
        return f"{type(value).__name__} {mask(text)}" if text else type(value).__name__
    if value is None or value == "":
        return repr(value)
    data = str(value).encode("utf-8", "surrogatepass")
    return "~" + hmac.new(_KEY, data, hashlib.sha256).hexdigest()[:8]


def format_exception(exc_info: Any) -> str:
    """A traceback as logging prints it; unless full detail is on, the message of each
    exception in it (chained ones too) is masked: errors echo input (a database's duplicate
    key names the chat, a parser quotes the address)."""
    text = _FORMATTER.formatException(exc_info)
    if _FULL:
        return text
    seen: set[int] = set()
    chain: list[BaseException] = [exc_info[1]] if exc_info[1] is not None else []
    while chain:
        error = chain.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        message = _message(error)
        if message:
            name = type(error).__qualname__
            text = text.replace(f"{name}: {message}", f"{name}: {mask(message)}")
        chain.extend(e for e in (error.__cause__, error.__context__) if e is not None)
        if isinstance(error, BaseExceptionGroup):
            chain.extend(error.exceptions)
    return text


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - traceback prints "<exception str() failed>"
        return ""


class pii:  # noqa: N801 - reads as a function at the call sites
    """A log argument that may be personal data: masked unless full detail is on. Cheap to
    make; the mark is computed only when the line is formatted."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return str(self.value) if _FULL else mask(self.value)

    def __repr__(self) -> str:
        return repr(self.value) if _FULL else mask(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)
