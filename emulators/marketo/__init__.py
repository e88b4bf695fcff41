"""Marketo Engage REST API emulator (identity, Lead Database, activities, bulk lead
extract, webhooks) for developing and testing the Marketo ⇄ Dynamics sync offline.

`create_app(config)` returns the ASGI app; `MarketoConfig` holds every knob.
"""

from emulators.marketo.app import create_app
from emulators.marketo.config import ApiUser, MarketoConfig

__all__ = ["ApiUser", "MarketoConfig", "create_app"]
