"""The secret filter: every configured secret is redacted from log messages, their arguments,
tracebacks (chained causes too) and stack traces, on the handlers the CLI configures. Personal
data in log arguments is masked by a stable mark unless full detail is configured."""

from __future__ import annotations

import html
import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from mautrix.types import EventID, RoomID
from ruamel.yaml import YAML

from bridge import logsafe
from bridge.config import load
from bridge.core.notices import Notices
from bridge.logsafe import REDACTED, SecretFilter, add_secrets, pii, secrets_in

REPO = Path(__file__).resolve().parents[1]
BOT_TOKEN = "7000001:AAH-logsafe-test-token-0123456789"
DB_PASSWORD = "pg-Passw0rd%2Fx"
SECRETS = {
    "as_token": "as-token-logsafe-0123456789",
    "hs_token": "hs-token-logsafe-0123456789",
    "webhook_secret": "hook-secret-logsafe-0123456789",
    "tg_hook_secret": "tg-webhook-secret-logsafe-0123456789-abcdef",
    "wa_access_token": "EAAG-logsafe-access-token",
    "wa_app_secret": "wa-app-secret-logsafe",
    "wa_verify_token": "wa-verify-token-logsafe",
    "imap_password": "imap-password-logsafe",
    "smtp_password": "smtp-password-logsafe",
    "outbound_key": "outbound-query-key-logsafe",
}


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(SecretFilter([BOT_TOKEN, SECRETS["wa_access_token"]]))
    log = logging.getLogger("test.logsafe")
    log.addHandler(handler)
    log.propagate = False
    try:
        yield log, stream
    finally:
        log.removeHandler(handler)
        log.propagate = True


def _download(url: str) -> None:
    raise ConnectionError(f"500, message='Internal Server Error', url='{url}'")


def test_traceback_arguments_and_message_are_redacted(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    url = f"https://api.telegram.org/file/bot{BOT_TOKEN}/documents/file_0.pdf"
    try:
        try:
            _download(url)
        except ConnectionError as e:
            raise RuntimeError("download failed") from e
    except RuntimeError:
        log.exception("Queue item %d failed for %s", 7, url)
    log.warning(f"inline {SECRETS['wa_access_token']}")
    log.error("stack", stack_info=True, extra={"x": BOT_TOKEN})
    out = stream.getvalue()
    assert "Traceback" in out and "ConnectionError" in out and "_download" in out
    assert "Queue item 7 failed for https://api.telegram.org/file/bot[redacted]/documents" in out
    assert f"inline {REDACTED}" in out
    assert BOT_TOKEN not in out and BOT_TOKEN.split(":")[1] not in out
    assert SECRETS["wa_access_token"] not in out


def test_a_bad_format_call_shows_no_secret(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    log.error("one %s two %s", BOT_TOKEN)  # wrong argument count: still no secret
    assert BOT_TOKEN not in stream.getvalue()
    assert REDACTED in stream.getvalue()


def _config_file(tmp_path: Path) -> Path:
    yaml = YAML()
    data = yaml.load((REPO / "example-config.yaml").read_text())
    data["appservice"]["as_token"] = SECRETS["as_token"]
    data["appservice"]["hs_token"] = SECRETS["hs_token"]
    data["database"]["url"] = f"postgres://bridge:{DB_PASSWORD}@127.0.0.1/bridge"
    channels = data["channels"]
    channels["support-webhook"]["secret"] = SECRETS["webhook_secret"]
    channels["support-webhook"]["outbound_url"] = (
        f"https://crm.example.com/inbox?api_key={SECRETS['outbound_key']}&x=1"
    )
    tg = channels["support-telegram"]
    tg["token"] = BOT_TOKEN
    tg["webhook_secret"] = SECRETS["tg_hook_secret"]
    wa = channels["support-whatsapp"]
    wa["access_token"] = SECRETS["wa_access_token"]
    wa["app_secret"] = SECRETS["wa_app_secret"]
    wa["verify_token"] = SECRETS["wa_verify_token"]
    (mail,) = [c for c in channels.values() if c["type"] == "email"]
    mail["imap"]["password"] = SECRETS["imap_password"]
    mail["smtp"]["password"] = SECRETS["smtp_password"]
    path = tmp_path / "config.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


def test_every_configured_secret_is_found(tmp_path: Path) -> None:
    found = secrets_in(load(str(_config_file(tmp_path)), {}))
    assert set(SECRETS.values()) <= found
    assert {BOT_TOKEN, BOT_TOKEN.split(":", 1)[1]} <= found
    assert "pg-Passw0rd/x" in found and DB_PASSWORD in found  # decoded and as written
    assert "7000001" not in found  # the bot id is not secret
    assert not {"Telegram", "WhatsApp", "polling", "https://api.telegram.org"} & found


def test_cli_logging_redacts_on_the_configured_handlers(tmp_path: Path) -> None:
    """The handlers the config declares (console and a file) get the filter at start-up."""
    path = _config_file(tmp_path)
    log_file = tmp_path / "bridge.log"
    yaml = YAML()
    data = yaml.load(path.read_text())
    data["logging"]["handlers"]["file"] = {
        "class": "logging.FileHandler", "filename": str(log_file), "formatter": "normal",
    }  # fmt: skip
    data["logging"]["root"]["handlers"] = ["console", "file"]
    with path.open("w") as f:
        yaml.dump(data, f)
    script = textwrap.dedent(
        f"""
        import logging
        from bridge.cli import setup_logging
        from bridge.config import load
        from bridge import logsafe
        setup_logging(load({str(path)!r}, {{}}))
        logsafe.log_personal_data(True)  # the error's text in full: only its secrets go
        log = logging.getLogger("bridge.test")
        secrets = {sorted(SECRETS.values())!r} + [{BOT_TOKEN!r}, {DB_PASSWORD!r}]
        try:
            raise ValueError("boom " + " ".join(secrets))
        except ValueError:
            log.exception("failed with %s", secrets)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    for out in (result.stderr, log_file.read_text()):
        assert "failed with" in out and "ValueError: boom" in out
        for secret in [*SECRETS.values(), BOT_TOKEN, DB_PASSWORD]:
            assert secret not in out


async def test_notices_in_rooms_carry_no_secret() -> None:
    """The core builds some reasons from any exception's text: the notice redacts them."""
    secret = "notice-secret-<&>-0123456789"
    add_secrets(secret)
    sent: list[dict[str, Any]] = []

    class Sender:
        async def send(self, room_id: str, content: Any, **_: Any) -> str:
            sent.append(content)
            return "$event"

    notices = Notices(cast(Any, Sender()))
    await notices.failure(RoomID("!room:x"), EventID("$e:x"), f"ClientError: url=/bot{secret}/")
    await notices.send(RoomID("!room:x"), f"state: {secret}", html_text=f"<b>{secret}</b>")
    for content in sent:
        assert secret not in json.dumps(content) and REDACTED in content["body"]
        assert html.escape(secret) not in content.get("formatted_body", "")


# ---------------------------------------------------------------------- personal data

PHONE = "+4915550123456"
MASK = re.compile(r"^~[0-9a-f]{8}$")


def test_personal_data_is_masked_by_a_stable_mark(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    assert not logsafe.logs_personal_data()
    assert MASK.match(str(pii(PHONE))) and repr(pii(PHONE)) == str(pii(PHONE))
    assert str(pii(PHONE)) == str(pii(PHONE)) == f"{pii(PHONE)}"
    assert str(pii(PHONE)) != str(pii("+4915550123457"))
    assert str(pii(42)) == str(pii("42"))  # a Telegram chat id and its text: one person
    assert str(pii(None)) == "None" and str(pii("")) == "''"
    error = ValueError("chat +4915550123456 not found")
    assert re.fullmatch(r"ValueError ~[0-9a-f]{8}", str(pii(error)))
    assert str(pii(TimeoutError())) == "TimeoutError"
    log.warning(
        "Mail from <%s> (%r) failed: %s", pii("jane@private.test"), pii("Jane"), pii(error)
    )
    out = stream.getvalue()
    assert "jane" not in out and "private.test" not in out and PHONE not in out
    assert f"Mail from <{pii('jane@private.test')}>" in out


def test_the_mark_is_made_only_when_the_line_is_written(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    log.setLevel(logging.INFO)
    made: list[str] = []

    class Value:
        def __str__(self) -> str:
            made.append("str")
            return PHONE

    try:
        log.debug("not written: %s", pii(Value()))
        assert made == [] and stream.getvalue() == ""
        log.info("written: %s", pii(Value()))
        assert made == ["str"] and PHONE not in stream.getvalue()
    finally:
        log.setLevel(logging.NOTSET)


def test_the_key_is_new_in_every_process() -> None:
    """No one can test candidate phone numbers against a mark: its key lives in one process."""
    script = f"from bridge.logsafe import mask; print(mask({PHONE!r}))"
    marks = {
        subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(marks) == 2 and all(MASK.match(m) for m in marks)
    assert logsafe.mask(PHONE) not in marks


def test_full_detail_shows_the_values_and_warns(
    logger: tuple[logging.Logger, io.StringIO], caplog: pytest.LogCaptureFixture
) -> None:
    log, stream = logger
    with caplog.at_level(logging.WARNING, "bridge"):
        logsafe.log_personal_data(True)
    try:
        (record,) = caplog.records
        assert record.levelno == logging.WARNING and "log_personal_data is on" in record.message
        assert str(pii(PHONE)) == PHONE and repr(pii("Jane")) == "'Jane'"
        assert str(pii(ValueError("x"))) == "x"
        log.warning("Created portal hooks/%s", pii(PHONE))
        assert f"Created portal hooks/{PHONE}" in stream.getvalue()
    finally:
        logsafe.log_personal_data(False)
    assert MASK.match(str(pii(PHONE)))
    with caplog.at_level(logging.WARNING, "bridge"):
        logsafe.log_personal_data(False)
    assert [r.name for r in caplog.records].count("bridge") == 1  # masking again is no news


def test_exception_messages_in_tracebacks_are_masked(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    address = "jane@private.test"
    try:
        try:
            raise KeyError(address)
        except KeyError as e:
            raise ValueError(f'duplicate key (account, chat)=(mail, "{address}")') from e
    except ValueError:
        log.exception("Queue item %d failed", 7)
        logsafe.log_personal_data(True)
        try:
            log.exception("Queue item %d failed", 8)
        finally:
            logsafe.log_personal_data(False)
    masked, full = stream.getvalue().split("Queue item 8 failed")
    assert "Traceback" in masked and "raise KeyError(address)" in masked  # the code is kept
    assert re.search(r"^KeyError: ~[0-9a-f]{8}$", masked, re.MULTILINE)
    assert re.search(r"^ValueError: ~[0-9a-f]{8}$", masked, re.MULTILINE)
    assert address not in masked.replace("raise KeyError(address)", "")
    assert f"KeyError: '{address}'" in full and f'"{address}")' in full
