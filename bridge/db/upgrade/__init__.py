"""Schema migrations, one file per version."""

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable()

from . import v01_initial, v02_message_lookup  # noqa: E402,F401
