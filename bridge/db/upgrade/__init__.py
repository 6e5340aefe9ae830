"""Schema migrations, one file per version."""

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable()

from . import (  # noqa: E402,F401
    v01_initial,
    v02_message_lookup,
    v03_dead_letters_digest_keys,
    v04_spool,
    v05_conversation,
    v06_inbox,
    v07_inbox_canned,
    v08_inbox_figures,
    v09_inbox_rooms,
    v10_inbox_queue_shown,
    v11_inbox_bot,
    v12_consent,
    v13_broadcast,
    v14_consent_lookups,
    v15_privacy,
    v16_crypto_waiting,
    v17_catch_up,
)
