"""The Marketo <-> Dynamics 365 sync engine.

Everything the Azure Functions in `function_app.py` do lives here, so it can be run
from a shell (`python -m sync_core`) and tested without the Functions runtime. This
package never imports `azure.functions`.

Layers, top to bottom: composition (`entrypoints`, `worker`, `runtime`), use cases
(`cycle`; `realtime` -> `syncperson`), the cycle's parts (feeds, page sync, links,
merges, deletes, apply, journal), pure rules (`planner`, `fieldrules`, `rules`,
`mapping`) and ports (`marketo`, `dataverse`, the `state` protocol). What the layering
prevents: a change in one concern (a client's retries, the store) reaching into the
merge rules, and an engine that cannot be run without Azure (the ports are seams:
the simulation and the engine tests run it on the emulator apps and `memstore`).
"""
