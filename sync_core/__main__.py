"""`python -m sync_core <command>`: the admin commands (see `sync_core.admin.cli`)."""

from __future__ import annotations

import sys

from sync_core.admin.cli import main

if __name__ == "__main__":
    sys.exit(main())
