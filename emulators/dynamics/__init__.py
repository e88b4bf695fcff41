"""Dynamics 365 / Dataverse Web API v9.2 emulator with an Entra ID token endpoint.

`create_app(config)` returns the ASGI app; `DynamicsConfig` holds every knob. See README.md.
"""

from emulators.dynamics.app import DynamicsApp, create_app
from emulators.dynamics.config import (
    AlternateKey,
    CustomColumn,
    DynamicsConfig,
    LimitsConfig,
    UserConfig,
)

__all__ = ["AlternateKey", "CustomColumn", "DynamicsApp", "DynamicsConfig", "LimitsConfig",
           "UserConfig", "create_app"]
