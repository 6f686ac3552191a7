"""``aiotstream schema outputs|site``: the published JSON Schemas validate what the product really writes and
reads (outputs of a replay of simulated data; the site files in the checkout), and the committed site schema
is exactly what the pydantic models generate, so it cannot drift from them."""
from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import orjson
import pytest
from support import cli, kafka_site_file, run_cli

import aiotstream
from aiotstream.config import SiteConfig
from aiotstream.errors import ConfigError

ROOT = Path(aiotstream.__file__).parent.parent
SITES = sorted(ROOT.glob("flows/sites/*.toml")) + sorted(ROOT.glob("deploy/*.toml"))


def _published(which: str, tmp: Path) -> jsonschema.Draft202012Validator:
    path = tmp / f"{which}.json"
    proc = run_cli("schema", which, "--out", str(path))
    assert f"wrote the {which} JSON Schema to {path}" in proc.stderr
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_the_committed_site_schema_is_what_the_models_generate() -> None:
    committed = (ROOT / "aiotstream" / "schemas" / "site.schema.json").read_text()
    printed = subprocess.run(cli("schema", "site"), capture_output=True, text=True, check=True, timeout=120).stdout
    assert printed == committed, "aiotstream/schemas/site.schema.json is stale: run `aiotstream schema site " \
                                 "--out aiotstream/schemas/site.schema.json`"
    assert json.loads(printed)["properties"].keys() == SiteConfig.model_fields.keys()
    outputs = subprocess.run(cli("schema", "outputs"), capture_output=True, text=True, check=True,
                             timeout=120).stdout
    assert outputs == (ROOT / "aiotstream" / "schemas" / "outputs.schema.json").read_text()


def test_the_site_schema_accepts_the_shipped_sites_and_refuses_what_the_loader_refuses(tmp_path: Path) -> None:
    v = _published("site", tmp_path)
    assert SITES
    for path in SITES:
        doc = tomllib.loads(path.read_text())
        assert not list(v.iter_errors(doc)), (path, [e.message for e in v.iter_errors(doc)][:3])
        SiteConfig.load(path)
    good = tomllib.loads((ROOT / "flows/sites/plant-a.toml").read_text())
    for bad in ({**good, "unknown_section": {}},  # a typo'd section
                {**good, "window": {**good.get("window", {}), "length_s": "ten"}},  # a wrong type
                {k: v for k, v in good.items() if k != "site"}):  # a required section missing
        assert list(v.iter_errors(bad)), bad.keys()
        f = tmp_path / "bad.json"
        f.write_bytes(orjson.dumps(bad))
        with pytest.raises(ConfigError):
            SiteConfig.load(f)


def test_the_outputs_schema_validates_every_record_a_real_run_writes(tmp_path: Path) -> None:
    v = _published("outputs", tmp_path)
    site, _ = kafka_site_file(tmp_path, "sch", 3)
    cfg = orjson.loads(site.read_bytes())
    site.write_bytes(orjson.dumps({**cfg, "model": {"warmup_windows": 5, "drift_detector": "none"}}))
    hist, out = tmp_path / "hist", tmp_path / "out"
    run_cli("simulate", "--site", str(site), "--out-dir", str(hist), "--duration", "45", "--faults", "2")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"asset":"asset-000","ts":"soon"}\nnot json\n')
    run_cli("replay", str(hist / "readings.jsonl"), str(hist / "waveforms.bin"), str(bad), "--site", str(site),
            "--out-dir", str(out))
    kinds: dict[str, int] = {}
    for f in sorted(out.glob("*.jsonl")):
        for line in f.read_bytes().splitlines():
            rec = orjson.loads(line)
            errors = [e.message for e in v.iter_errors(rec)]
            assert not errors, (f.name, rec.get("schema"), errors[:3])
            kind = rec["schema"].split(".")[1].split("/")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    assert {"score", "kpi", "alert", "deadletter"} <= kinds.keys(), kinds
    assert kinds["deadletter"] == 2
