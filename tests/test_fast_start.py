"""Start-up stays fast: what the bridge imports before it serves leaves out the libraries that
take long to import: aiogram (seconds; the Telegram connector imports it when it starts) and,
without encryption in the config, mautrix's Olm machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BUILD = """
import sys
from bridge import app
from bridge.config import load

config = load("example-config.yaml", {}, need_tokens=False)
assert {c.type for c in config.channels.values()} >= {"telegram", "webhook"}
app.build(config, app.features(config))
print(sorted(m for m in ("aiogram", "pydantic", "mautrix.crypto") if m in sys.modules))
"""


def test_building_the_bridge_does_not_import_aiogram() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BUILD], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
