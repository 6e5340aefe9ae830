"""Command line: run the bridge, or write an appservice registration with ``-g``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import logging.config
import os
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TextIO

from ruamel.yaml import YAML

from . import __version__, logsafe, registration
from .config import ENV_PREFIX, Config, ConfigError, FileConfig, is_placeholder, load, load_raw

if TYPE_CHECKING:
    from .core.bridge import Feature

log = logging.getLogger("bridge")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bridge",
        description="A Matrix appservice bridge for business messaging channels.",
    )
    p.add_argument(
        "-c", "--config", default="config.yaml", help="config file (default: %(default)s)"
    )
    p.add_argument(
        "-g", "--generate-registration", action="store_true",
        help="write fresh tokens into the config and an appservice registration, then exit",
    )  # fmt: skip
    p.add_argument(
        "-r", "--registration", default="registration.yaml",
        help="where -g writes the registration (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def generate(config_path: str, registration_path: str) -> None:
    """Put fresh tokens into the config file (comments kept) and write the registration."""
    config = load(config_path, need_tokens=False)  # validate everything else first
    as_token, hs_token = registration.new_token(), registration.new_token()
    config = dataclasses.replace(config, as_token=as_token, hs_token=hs_token)
    # The registration first: if it cannot be written, the config keeps its old tokens and
    # an existing homeserver setup keeps working.
    try:
        with _private_writer(registration_path) as f:
            yaml = YAML()
            yaml.default_flow_style = False
            yaml.dump(registration.build(config), f)
    except OSError as e:
        raise ConfigError("(registration)", f"cannot write {registration_path}: {e}") from e
    raw = load_raw(config_path)
    raw["appservice.as_token"] = as_token
    raw["appservice.hs_token"] = hs_token
    try:
        _save(raw, config_path)
    except OSError as e:
        raise ConfigError("(file)", f"cannot write the new tokens into {config_path}: {e}") from e
    print(f"Wrote {registration_path}; add it to the homeserver's app_service_config_files.")


def _save(raw: FileConfig, path: str) -> None:
    """Write the config with its comments, atomically, raising on failure (mautrix's
    ``save()`` only logs)."""
    with _private_writer(path) as f:
        yaml = YAML()
        yaml.indent(4)
        yaml.width = 200
        yaml.dump(raw._data, f)


@contextlib.contextmanager
def _private_writer(path: str) -> Iterator[TextIO]:
    """Replace ``path`` atomically with what is written, keeping the mode and owner of the file
    it replaces (a new file is 0600: it holds tokens). A symlink stays, its target is written."""
    target = os.path.realpath(path)
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    # mkstemp makes the file 0600 and never reuses an existing one.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            if old is not None:
                mode = stat.S_IMODE(old.st_mode)
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(f.fileno(), old.st_uid, old.st_gid)
                    except PermissionError:
                        mode &= 0o700  # others than the old owner and group may not read it
                os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def setup_logging(config: Config) -> None:
    """Configure logging from the config, then redact every configured secret on every handler
    (the second line of defence behind errors that are cleaned where they are made)."""
    if config.logging:
        logging.config.dictConfig({"disable_existing_loggers": False, **config.logging})
    else:
        logging.basicConfig(level=logging.INFO)
    logsafe.install(logsafe.secrets_in(config))


async def _run(config: Config, features: list[Feature]) -> int:
    from . import app

    setup_logging(config)
    bridge = app.build(config, features)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(bridge.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            # Stopped while still waiting for the homeserver or the database.
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        else:
            starting.result()
            log.info("Bridge started")
            await stopping
    finally:
        stopping.cancel()
        log.info("Stopping")
        await bridge.stop()
    return 0


def _redacted(text: str, config_path: str) -> str:
    """A config error as shown on the terminal (and in the service's journal): without the
    secrets of the file, e.g. a database URL with its password."""
    found = logsafe.secrets_in(
        {name: value for name, value in os.environ.items() if name.startswith(ENV_PREFIX)}
    )
    with contextlib.suppress(ConfigError):
        found |= logsafe.secrets_in(load_raw(config_path)._data)
    # A placeholder ("generate") stands for a token still to be made, it is no secret.
    return logsafe.SecretFilter({s for s in found if not is_placeholder(s)}).redact(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.generate_registration:
            generate(args.config, args.registration)
            return 0
        from . import app

        config, features = app.load(args.config)  # fail before anything starts
    except ConfigError as e:
        shown = _redacted(str(e), args.config)
        print(f"Configuration error in {args.config}: {shown}", file=sys.stderr)
        return 2
    return asyncio.run(_run(config, features))
