"""The build's version: ``aiotstream --version`` and lineage ``code_version`` carry the package version and the git
commit, from the checkout when run from one, else from ``aiotstream/_build.py`` written by ``setup.py``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import aiotstream

ROOT = Path(__file__).resolve().parents[2]


def test_an_installed_package_takes_its_commit_from_the_build_file(tmp_path: Path) -> None:
    # an installed copy has no git: the commit setup.py wrote at build time counts, and is stable
    pkg = tmp_path / "site-packages" / "aiotstream"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text((ROOT / "aiotstream" / "__init__.py").read_text())
    (pkg / "_build.py").write_text('COMMIT = "0123456789abcdef0123456789abcdef01234567"\n')
    code = "import aiotstream; print(aiotstream.code_version())"
    env = {**os.environ, "PYTHONPATH": str(pkg.parent)}
    # -S: without site-packages, whose editable-install finder would hand out this checkout's modules
    runs = {subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                           check=True).stdout.strip() for _ in range(2)}
    assert runs == {f"{aiotstream.__version__}+g0123456789ab"}
    (pkg / "_build.py").unlink()  # built without git and without the file: the bare version
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=True).stdout.strip()
    assert out == aiotstream.__version__


def test_setup_py_writes_the_build_commit(tmp_path: Path) -> None:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()
    if not head:
        pytest.skip("not a git checkout: nothing for setup.py to record")
    subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True, check=True)
    build = (ROOT / "aiotstream" / "_build.py").read_text()
    assert f"COMMIT = '{head}" in build


def test_outputs_carry_the_version_the_cli_prints(tmp_path: Path) -> None:
    # regression: lineage said "0.1.0" for every build
    from support import cli, read_jsonl_outputs, run_cli

    printed = subprocess.run(cli("--version"), capture_output=True, text=True, check=True).stdout.split()[-1]
    assert printed == aiotstream.code_version() and printed.startswith(aiotstream.__version__)
    site = tmp_path / "site.toml"
    site.write_text('[site]\nid = "v"\n\n[[assets]]\nid = "asset-000"\nline = "l1"\n\n[inputs]\ntail = false\n')
    (tmp_path / "r.csv").write_text("asset,ts,metric,value\nasset-000,1767225600000000000,temperature,1.5\n"
                                    "ghost,1767225601000000000,temperature,2.5\n")
    run_cli("replay", str(tmp_path / "r.csv"), "--site", str(site), "--out-dir", str(tmp_path / "o"))
    records = [r for recs in read_jsonl_outputs(tmp_path / "o").values() for r in recs]
    assert records and {r["code_version"] for r in records} == {printed}
