"""The JSON Schemas shipped in the package: the output records (``outputs.schema.json``, written by hand)
and the site config (``site.schema.json``, generated from the pydantic models by :func:`site_schema`; a test
checks that the committed file is what the models give). ``aiotstream schema outputs|site`` prints them.

>>> [k for k in ("alert", "command", "kpi", "score", "deadletter") if k in load_schema()["$defs"]]
['alert', 'command', 'kpi', 'score', 'deadletter']
>>> site_schema()["title"], site_schema()["additionalProperties"]
('SiteConfig', False)
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


NAMES = ("outputs", "site")
"""What ``aiotstream schema`` publishes."""
SITE_ID = "https://aiotstream.invalid/schemas/site.schema.json"


def site_schema() -> dict[str, Any]:
    """The site config's JSON Schema (Draft 2020-12), from :class:`~aiotstream.config.SiteConfig`."""
    from aiotstream.config import SiteConfig

    generated = SiteConfig.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SITE_ID,
            "description": ("An aiotstream site config (TOML, YAML or JSON): generated from the pydantic "
                            "models by `aiotstream schema site`; docs/configuration.md has every field."),
            **generated}


def schema_text(name: str) -> str:
    """The text of schema ``name`` (:data:`NAMES`) as shipped: the outputs file as it is, the site schema as
    :func:`site_schema` gives it (indented, keys in the models' order, one newline at the end)."""
    if name == "outputs":
        return resources.files(__name__).joinpath("outputs.schema.json").read_text()
    if name == "site":
        return json.dumps(site_schema(), indent=2, ensure_ascii=False) + "\n"
    raise ValueError(f"no schema {name!r}: choose from {', '.join(NAMES)}")
