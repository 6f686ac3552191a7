"""The JSON Schemas of the output records, shipped in the package.

>>> [k for k in ("alert", "command", "kpi", "score", "deadletter") if k in load_schema()["$defs"]]
['alert', 'command', 'kpi', 'score', 'deadletter']
"""
from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_schema() -> dict[str, Any]:
    """The output schema: its root validates any record (dispatching on ``schema``); ``$defs`` has each
    kind."""
    return json.loads(resources.files(__name__).joinpath("outputs.schema.json").read_text())


def validator(kind: str | None = None) -> Any:
    """A ``jsonschema`` validator for one kind (``alert``, ``command``, ``kpi``, ``score``, ``deadletter``,
    ``model``, ``scalar``) or any record."""
    import jsonschema

    root = load_schema()
    # "model" names the lineage block in $defs
    refs = {"model": ["modelEvent"]}.get(kind or "", [kind])
    schema = root if kind is None else {**root, "oneOf": [{"$ref": f"#/$defs/{r}"} for r in refs]}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
