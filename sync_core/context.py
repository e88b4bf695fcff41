"""What the parts of one cycle share, handed to each explicitly.

Linking new records, following merges, writing pairs and closing deleted links each get
this narrow view (clients, store, hasher, the effective mapping, the Marketo changes
still to handle, the run record) instead of the whole cycle. What it prevents: a part
reaching into the cycle's other state, and the import cycle that came with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync_core.dataverse import DataverseClient
from sync_core.mapping import Mapping
from sync_core.marketo import MarketoClient
from sync_core.marketofeed import MarketoChanges
from sync_core.planner import Hasher
from sync_core.runrecord import RunRecord
from sync_core.state import StateStore


@dataclass
class CycleContext:
    store: StateStore
    marketo: MarketoClient
    dataverse: DataverseClient
    hasher: Hasher
    # The effective mapping: the configured one less the fields access leaves out; the
    # cycle replaces it when field access is read again.
    mapping: Mapping
    record: RunRecord
    changes: MarketoChanges
    # Of the new records' emails sent with createOnly this run, the share Marketo
    # already had (None: none sent yet); newlinks looks up first past half.
    emails_known: float | None = None
