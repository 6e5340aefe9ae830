"""The provisioning API: a REST API under one prefix on the appservice listener, described by
the OpenAPI document it serves, over the same services layer as the bot's commands (see
``api.py``; the seam features add their operations through is ``bridge/seams_api.py``)."""
