"""The Marketo <-> Dynamics 365 sync engine.

Everything the Azure Functions in `function_app.py` do lives here, so it can be run
from a shell (`python -m sync_core`) and tested without the Functions runtime. This
package never imports `azure.functions`.
"""
