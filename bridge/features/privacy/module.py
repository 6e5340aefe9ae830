"""Data protection as a feature module (``features.privacy``): the ``privacy`` command with its
parts, the audit log, and the jobs that carry out erasures and retention.

``privacy export <identity>``   everything held about a person, as one archive (``export.py``)
``privacy erase <identity>``    erase a person, after a confirmation (``erase.py``)
``privacy report``              what personal data the bridge holds, per account (``report.py``)
``privacy retention``           the retention rules and the last run (``retention.py``)
``privacy audit [identity]``    the audit log (``audit.py``)

Each part is a class with ``words`` (its sub-command), ``level`` and ``run(ctx, args)``; jobs
are registered by the parts that have them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...config import Config
from ...seams import AuditRecord, Command, CommandContext, Seams
from .api import add_operations
from .audit import Audit
from .config import PrivacyConfig, parse_privacy_config
from .eraserun import erase
from .export import Exporter
from .report import Report
from .retention import RetentionRunner

Run = Callable[[CommandContext, list[str]], Awaitable[str]]


@dataclass(frozen=True)
class Part:
    word: str
    args: str
    help: str
    run: Run


class Privacy:
    name = "privacy"

    def __init__(self) -> None:
        self.audit: Audit | None = None

    def parse_config(self, section: Any, config: Config) -> PrivacyConfig | None:
        return parse_privacy_config(section, config)

    def setup(self, seams: Seams, options: PrivacyConfig) -> None:
        audit = self.audit = Audit(seams.services, seams.config, options.secret)
        seams.add_audit_sink(_Sink(audit))
        export = Exporter(seams.services, seams.config, options, audit)
        report = Report(seams.services, seams.config, audit)
        eraser = erase(seams, options, audit)
        add_operations(seams, export, eraser)
        parts: list[Part] = [
            Part("audit", "[identity]", "the audit log (of one person)", audit.command),
            Part("export", "<identity>", "a person's data, for you", export.command),
            Part("report", "", "what personal data the bridge holds", report.command),
            Part("erase", "<identity>|confirm <n>", "erase a person", eraser.run),
        ]
        retention = RetentionRunner(seams.services, seams.config, options.retention, audit)
        parts.append(
            Part("retention", "[run]", "the retention rules, last pass", retention.command)
        )
        if options.retention.active:
            seams.add_job(retention.job())
        seams.add_command(
            Command(
                "privacy",
                "export|erase|report|retention|audit …",
                "admin",
                "data protection: a person's export and erasure, retention, the audit log",
                _dispatch(parts),
                audited=True,  # each part records what it did, the person by hashes
            )
        )


@dataclass(frozen=True)
class _Sink:
    audit: Audit

    async def record(self, record: AuditRecord) -> None:
        await self.audit.record_seam(record)


def _dispatch(parts: list[Part]) -> Run:
    usage = "Usage:\n" + "\n".join(f"privacy {p.word} {p.args} — {p.help}" for p in parts)

    async def run(ctx: CommandContext, words: list[str]) -> str:
        for part in parts:
            if words and words[0].lower() == part.word:
                return await part.run(ctx, words[1:])
        return usage

    return run


PRIVACY = Privacy()
