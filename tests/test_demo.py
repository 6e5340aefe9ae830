"""The README's first command: ``scripts/demo.sh`` starts the demo, and ``--check`` drives a
customer of every channel through it (webhook, Telegram, WhatsApp, VK, MAX, email) and back,
then the newsletter's opt-ins, broadcasts and an opt-out."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.infra.ports import free_port

REPO = Path(__file__).resolve().parents[1]
PORTS = ("HS", "BRIDGE", "CUSTOMER", "TELEGRAM", "WHATSAPP", "VK", "MAX", "MAIL", "IMAP", "SMTP")


def test_demo_check_passes(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEMO_DATA": str(tmp_path / "demo-data"),
        # The suite's venv is the one under test: the demo must not reinstall it.
        "DEMO_SKIP_INSTALL": "1",
        **{f"DEMO_{name}_PORT": str(free_port()) for name in PORTS},
    }
    result = subprocess.run(
        ["bash", "scripts/demo.sh", "--check"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "PASS" in output
    # The bridge alone was killed midway; the demo started it again and the webhook customer's
    # conversation went on in the same room.
    assert "kill the bridge alone" in output and "running again as pid" in output, output[-3000:]
    assert "Hello again from the demo check" in output, output[-3000:]
    for channel in ("telegram", "whatsapp", "vk", "max", "email"):
        assert f"  - {channel}: " in output, f"the check skipped {channel}:\n{output[-3000:]}"
    # The newsletter: opt-in on Telegram and by email, two broadcasts, an opt-out between them;
    # a person's data export.
    for step in ("consent: pressing Confirm", "opt-out: the Telegram subscriber writes STOP",
                 "broadcast: the Telegram user who wrote STOP did not",
                 "privacy: staff asks for the data of"):  # fmt: skip
        assert step in output, f"the check skipped {step!r}:\n{output[-3000:]}"
