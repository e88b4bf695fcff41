"""Validate emulator responses against Adobe's published Swagger definitions.

`$ref`s resolve inside swagger-mapi.json. Two documented deviations are patched into
the schema before validating (see emulators/marketo/README.md): Swagger's Java-generated
`"type": "object"` for free-form attribute values means "any JSON value", and a change
activity's `newValue` is null when a field was cleared.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

SPECS = Path(__file__).parent / "specs"  # Adobe's files, vendored (specs/SOURCE.md)


@functools.cache
def _definitions(file: str) -> dict[str, Any]:
    defs: dict[str, Any] = copy.deepcopy(json.loads((SPECS / file).read_text())["definitions"])
    if "Attribute" in defs:
        defs["Attribute"]["properties"]["value"] = {}
    if "LeadChangeField" in defs:
        defs["LeadChangeField"]["properties"]["newValue"] = {"type": ["string", "null"]}
    return defs


def validate(body: Any, definition: str, file: str = "swagger-mapi.json") -> None:
    """Raise jsonschema.ValidationError if `body` does not match `#/definitions/<name>`."""
    defs = _definitions(file)
    schema = {"$ref": f"#/definitions/{definition}", "definitions": defs}
    jsonschema.Draft4Validator(schema).validate(body)
