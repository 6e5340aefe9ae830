"""Schema migrations, one file per version."""

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable()

from . import v01_initial  # noqa: E402,F401
