"""A local Azure Functions host for `function_app` (Core Tools cannot be installed here).

It serves the app's HTTP functions under `/api/<route>`, enforcing function keys the
way Azure does, and fires its timer functions on their NCRONTAB schedules.
"""

from emulators.functions.host import LOCAL_FUNCTION_KEY, LOCAL_MASTER_KEY, create_host

__all__ = ["LOCAL_FUNCTION_KEY", "LOCAL_MASTER_KEY", "create_host"]
