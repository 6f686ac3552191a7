"""Every subcommand, given bad arguments, ends in one line on stderr and a non-zero exit: no traceback, no Rust
panic, no hang (each run under a timeout), no wall of librdkafka log lines.

Table-driven: ``CASES`` holds ``(command, args, expected exit code, text the line must contain)``; ``args`` may
name the fixtures' paths (``{file}``, ``{dir}``, ``{missing}``, ``{site}``, ``{csv}``, ``{dead}`` an address no
broker answers on, ``{busy}`` a port in use). A subcommand the parser has but the table does not fails
:func:`test_every_subcommand_has_cases`: add rows for it.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from support import cli

from aiotstream.cli import build_parser
from aiotstream.io.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SITE = ROOT / "flows" / "sites" / "plant-a.toml"
W = ("--broker-wait", "1")  # the bounded wait for a broker, short for the tests (default 10 s)

CASES: list[tuple[str, tuple[str, ...], int, str]] = [
    ("", (), 2, "the following arguments are required: command"),
    ("", ("bogus",), 2, "invalid choice: 'bogus'"),
    # validate
    ("validate", ("{missing}",), 2, "cannot read: No such file"),
    ("validate", ("{dir}",), 2, "cannot read: Is a directory"),
    ("validate", ("{file}",), 2, "unknown file type '(no suffix)'"),
    ("validate", ("{bad_toml}",), 2, "not valid TOML"),
    # broker
    ("broker", ("--port", "-1"), 2, "--port: must be from 0 to 65535"),
    ("broker", ("--port", "70000"), 2, "--port: must be from 0 to 65535"),
    ("broker", ("--port", "{busy}"), 1, "is already in use"),
    # simulate
    ("simulate", ("--assets", "0", "--out-dir", "{tmp}/s"), 2, "--assets: must be from 1"),
    ("simulate", ("--assets", "-3", "--out-dir", "{tmp}/s"), 2, "--assets: must be from 1"),
    ("simulate", ("--partitions", "0"), 2, "--partitions: must be from 1"),  # hung forever
    ("simulate", ("--malformed", "-5", "--out-dir", "{tmp}/s"), 2, "--malformed: must be from 0"),
    ("simulate", ("--duration", "0", "--out-dir", "{tmp}/s"), 2, "--duration: must be greater than 0"),
    ("simulate", ("--duration", "nan", "--out-dir", "{tmp}/s"), 2, "must be a finite number"),
    ("simulate", ("--faults", "1", "--duration", "5", "--out-dir", "{tmp}/s"), 1, "run too short for faults"),
    ("simulate", ("--faults", "9", "--out-dir", "{tmp}/s"), 1, "but there are only 5 assets"),
    ("simulate", ("--out-dir", "{file}"), 2, "--out-dir {file}: is a file"),
    ("simulate", ("--out-dir", "{tmp}/s", "--truth", "{dir}"), 2, "--truth {dir}: is a directory"),
    ("simulate", ("--site", "{missing}"), 2, "--site {missing}: no such file"),
    ("simulate", ("--file-partitions", "2"), 2, "--file-partitions needs --out-dir"),
    ("simulate", ("--brokers", "{dead}", *W), 1, "no Kafka broker answers at {dead}"),
    # run
    ("run", ("--site", "{missing}"), 2, "--site {missing}: no such file"),
    ("run", ("--site", "{dir}"), 2, "--site {dir}: is a directory"),
    ("run", ("--site", "{site}", "--out-dir", "{file}"), 2, "--out-dir {file}: is a file"),
    ("run", ("--site", "{site}", "--out-dir", "{tmp}/o", "--parquet-dir", "{file}"), 2,  # was a Rust panic, rc 134
     "--parquet-dir {file}: is a file"),
    ("run", ("--site", "{site}", "--out-dir", "{tmp}/o", "--recovery", "{file}"), 2,  # was FileExistsError
     "--recovery {file}: is a file"),
    ("run", ("--site", "{site}", "-w", "0"), 2, "--workers: must be from 1"),
    ("run", ("--site", "{site}", "--epoch-s", "0"), 2, "--epoch-s: must be greater than 0"),
    ("run", ("--site", "{site}", "--epoch-s", "-1"), 2, "--epoch-s: must be greater than 0"),
    ("run", ("--site", "{site}", "--backup-s", "-1"), 2, "--backup-s: must be at least 0"),
    ("run", ("--site", "{site}", "--recovery-partitions", "0"), 2, "--recovery-partitions: must be from 1"),
    ("run", ("--site", "{site}", "-a", "nohost", "-i", "0"), 2, "is not host:port"),
    ("run", ("--site", "{site}", "-a", "h:1;h:2", "-i", "5"), 2, "is not an index into the 2 address(es)"),
    ("run", ("--site", "{site}", "-a", "h:1;h:2"), 2, "needs -i/--process-id"),
    ("run", ("--site", "{site}", "--brokers", "{dead}", *W), 1, "no Kafka broker answers at {dead}"),  # 291 lines
    ("run", ("--site", "{site}", "--brokers", "{dead}", "--out-dir", "{tmp}/o", *W), 1, "no Kafka broker answers"),
    ("run", ("--site", "{site}", "--metrics-port", "-1"), 2, "--metrics-port: must be from 0 to 65535"),
    ("run", ("--site", "{site}", "--metrics-port", "70000"), 2, "--metrics-port: must be from 0 to 65535"),
    ("run", ("--site", "{site}", "--metrics-port", "http"), 2, "--metrics-port: not a whole number: 'http'"),
    ("run", ("--site", "{site}", "--out-dir", "{tmp}/o", "--metrics-port", "{busy}", *W), 1,
     "--metrics-port {busy} on 127.0.0.1 is already in use"),
    ("run", ("--site", "{site}", "--out-dir", "{tmp}/o", "--metrics-host", "0.0.0.0"), 2,
     "--metrics-host needs --metrics-port"),
    ("run", ("--site", "{site}", "--out-dir", "{tmp}/o", "--metrics-port", "0", "--metrics-host", "203.0.113.7"), 1,
     "--metrics-host 203.0.113.7 --metrics-port 0: cannot listen there"),
    ("run", ("--site", "{site}", "--out-dir", "{tmp}/o", "--metrics-port", "0", "--metrics-host", "no.such.invalid"),
     1, "--metrics-host no.such.invalid: not a host name or address of this machine"),
    # detect
    ("detect", ("{csv}",), 2, "the following arguments are required: --timestamp-column, --value-columns, --out"),
    ("detect", ("{csv}", "--timestamp-column", "ts", "--value-columns", "value", "--out", "{tmp}/d.csv",
                "--metrics-host", "127.0.0.1"), 2, "--metrics-host needs --metrics-port"),
    ("detect", ("{missing}", "--timestamp-column", "ts", "--value-columns", "value", "--out", "{tmp}/d.csv"), 1,
     "no such file"),
    ("detect", ("{dir}", "--timestamp-column", "ts", "--value-columns", "value", "--out", "{tmp}/d.csv"), 1,
     "is a directory"),
    ("detect", ("{empty}", "--timestamp-column", "ts", "--value-columns", "value", "--out", "{tmp}/d.csv"), 1,
     "the file is empty"),
    ("detect", ("{header_only}", "--timestamp-column", "ts", "--value-columns", "value", "--out", "{tmp}/d.csv"),
     1, "the file has a header but no rows"),
    ("detect", ("{csv}", "--timestamp-column", "time", "--value-columns", "value", "--out", "{tmp}/d.csv"), 1,
     "column(s) time not found"),
    ("detect", ("{csv}", "--timestamp-column", "ts", "--value-columns", "value,power", "--out", "{tmp}/d.csv"), 1,
     "column(s) power not found"),
    ("detect", ("{bad_ts}", "--timestamp-column", "ts", "--value-columns", "value", "--out", "{tmp}/d.csv"), 1,
     "row 2: cannot read timestamp 'yesterday'"),
    ("detect", ("{csv}", "--timestamp-column", "ts", "--value-columns", "value", "--out", "{dir}"), 1,
     "is a directory; name the output file"),
    ("detect", ("{csv}", "--timestamp-column", "ts", "--value-columns", "value", "--out", "{missing}/d.csv"), 1,
     "does not exist"),
    ("detect", ("{file}", "--timestamp-column", "ts", "--value-columns", "value", "--out", "{tmp}/d.csv"), 1,
     "unknown file type '(no suffix)'"),
    # replay
    ("replay", ("{missing}", "--site", "{site}", "--out-dir", "{tmp}/o"), 1, "matches no file"),
    ("replay", ("{dir}", "--site", "{site}", "--out-dir", "{tmp}/o"), 1, "is a directory"),
    ("replay", ("{csv}", "--site", "{missing}", "--out-dir", "{tmp}/o"), 2, "no such file"),
    ("replay", ("{csv}", "--site", "{site}", "--out-dir", "{tmp}/o", "--lineage-file", "{dir}"), 2,
     "--lineage-file {dir}: is a directory; give a file name"),
    ("replay", ("{csv}", "--site", "{site}", "--format", "xml"), 2, "--format: invalid choice: 'xml'"),
    ("replay", ("{csv}", "--site", "{site}", "--format", "parquet", "--out-dir", "{tmp}/o"), 1,
     "cannot be read as parquet"),
    ("replay", ("{file}", "--site", "{site}", "--format", "csv", "--out-dir", "{tmp}/o"), 1, "not csv text"),
    ("replay", ("{cols}", "--site", "{site}", "--out-dir", "{tmp}/o"), 1, "column(s) ts, metric, value, asset"),
    ("replay", ("{csv}", "--site", "{site}", "--speed", "-1"), 2, "--speed: must be at least 0"),
    ("replay", ("{csv}", "--site", "{site}", "--out-dir", "{file}"), 2, "--out-dir {file}: is a file"),
    ("replay", ("{csv}", "--site", "{site}", "--brokers", "{dead}", *W), 1, "no Kafka broker answers at {dead}"),
    ("replay", ("{csv}", "--site", "{site}", "--metrics-port", "-1"), 2, "--metrics-port: must be from 0 to 65535"),
    ("replay", ("{csv}", "--site", "{site}", "--metrics-port", "65536"), 2, "--metrics-port: must be from 0 to 65535"),
    ("replay", ("{csv}", "--site", "{site}", "--out-dir", "{tmp}/o", "--metrics-port", "{busy}"), 1,
     "--metrics-port {busy} on 127.0.0.1 is already in use"),
    ("replay", ("{csv}", "--site", "{site}", "--out-dir", "{tmp}/o", "--metrics-host", "127.0.0.1"), 2,
     "--metrics-host needs --metrics-port"),
    ("replay", ("{csv}", "--site", "{site}", "--out-dir", "{tmp}/o", "--metrics-port", "0", "--metrics-host",
                "203.0.113.7"), 1, "cannot listen there"),
    # demo
    ("demo", ("--assets", "0"), 2, "--assets: must be from 1"),
    ("demo", ("--out", "{file}"), 2, "--out {file}: is a file"),
    ("demo", ("--duration", "-1"), 2, "--duration: must be greater than 0"),
    ("demo", ("--features", "bogus", "--out", "{tmp}/d"), 2, "unknown feature set 'bogus'"),
    # evaluate
    ("evaluate", ("--no-plot",), 2, "give a labelled FILE or --simulate SCENARIO"),
    ("evaluate", ("--simulate", "easy", "--spec", "drift_fraction=0.3", "--no-plot", "--out", "{tmp}/ev"), 2,
     "--spec sets the realistic scenario's numbers"),
    ("evaluate", ("--simulate", "realistic", "--spec", "bogus=1", "--no-plot", "--out", "{tmp}/ev"), 2,
     "--spec: RealisticSpec.__init__() got an unexpected keyword argument 'bogus'"),
    ("evaluate", ("--simulate", "realistic", "--spec", "drift_until_s=-1", "--no-plot", "--out", "{tmp}/ev"), 2,
     "--spec: drift_until_s must be >= 0 seconds"),
    ("evaluate", ("--simulate", "realistic", "--spec", "nokey", "--no-plot"), 2, "expected KEY=VALUE, got 'nokey'"),
    ("evaluate", ("--simulate", "realistic", "--site", "{missing}", "--no-plot"), 2, "--site {missing}: no such file"),
    ("evaluate", ("{missing}", "--timestamp-column", "t", "--value-columns", "a"), 2, "no such file"),
    ("evaluate", ("{cols}", "--value-columns", "a", "--no-plot"), 2, "needs --timestamp-column"),
    ("evaluate", ("{cols}", "--timestamp-column", "t", "--value-columns", "a", "--no-plot"), 2,
     "no column 't' (--timestamp-column)"),
    ("evaluate", ("--simulate", "realistic", "--assets", "2", "--faults", "3", "--out", "{tmp}/e"), 2,
     "more faults than --assets 2"),
    ("evaluate", ("--simulate", "hard"), 2, "--simulate: invalid choice: 'hard'"),
    ("evaluate", ("--simulate", "easy", "--json", "{dir}"), 2, "--json {dir}: is a directory"),
    ("evaluate", ("--simulate", "easy", "--amplitude", "0"), 2, "--amplitude: must be greater than 0"),
    # bench
    ("bench", (), 2, "the following arguments are required"),
    ("bench kernels", ("--windows", "0"), 2, "--windows: must be from 1"),  # was ZeroDivisionError
    ("bench kernels", ("--samples", "-1"), 2, "--samples: must be from 2"),
    ("bench kernels", ("--json", "{dir}"), 2, "--json {dir}: is a directory"),
    ("bench e2e", ("--assets", "0"), 2, "--assets: must be from 1"),
    ("bench e2e", ("--json", "{missing}/x.json"), 2, "does not exist"),
    ("bench e2e", ("--bogus",), 2, "unrecognized arguments: --bogus"),
    ("bench mqtt", ("--messages", "0"), 2, "--messages: must be from 1"),
    ("bench mqtt", ("--rounds", "-2"), 2, "--rounds: must be from 1"),
    ("bench mqtt", ("--rate", "nan", "burst"), 2, "must be a finite number"),
    ("bench mqtt", ("--contenders", "bare,bogus"), 2, "--contenders: give some of bare, ingest, flow"),
    ("bench mqtt", ("--json", "{dir}"), 2, "--json {dir}: is a directory"),
    ("bench mqtt", ("sideways",), 2, "invalid choice: 'sideways'"),
    # console
    ("console", ("--site", "{missing}"), 2, "--site {missing}: no such file"),
    ("console", ("--site", "{site}", "--port", "-1"), 2, "--port: must be from 0 to 65535"),
    ("console", ("--site", "{site}", "--refresh-s", "0"), 2, "--refresh-s: must be at least 0.2"),
    ("console", ("--site", "{site}", "--port", "{busy}", *W), 1, "--port {busy} on 127.0.0.1 is already in use"),
    ("console", ("--site", "{site}", "--brokers", "{dead}", "--port", "0", *W), 1, "no Kafka broker answers at {dead}"),
    ("console", ("--site", "{site}", "--key", "{file}"), 2, "--key: the site has no [auth], so the console signs nothing"),
    ("console", ("--site", "{auth_site}"), 2, "the site has [auth]: give the console's signing key (--key FILE"),
    ("console", ("--site", "{auth_site}", "--key", "{missing}"), 2, "--key {missing}: no such file"),
    ("console", ("--site", "{auth_site}", "--key", "{file}"), 1, "--key: '{file}' is not a PEM private key"),
    ("console", ("--site", "{auth_site}", "--key", "{console_key}", "--principal", "eve"), 1,
     "--principal eve: has roles engineer, not console"),
    ("console", ("--site", "{auth_site}", "--key", "{console_key}", "--principal", "nobody"), 1,
     "--principal nobody: not a principal of the site's [auth]"),
    ("console", ("--site", "{auth_site}", "--key", "{console_key}", "--session-secret-file", "{short_secret}"), 2,
     "--session-secret-file: the secret needs at least 32 bytes"),
    ("console", ("--site", "{bad_hash_site}", "--key", "{console_key}"), 1,
     "auth.principals[0].password_hash_file: secret file '{file}' is not UTF-8 text"),
    # train
    ("train", ("--site", "{site}", "--registry", "{tmp}/r", "--name", "n", "--version", "1", "--signing-key",
               "{missing}"), 2, "--signing-key {missing}: no such file"),  # was FileNotFoundError
    ("train", ("--site", "{site}", "--registry", "{tmp}/r", "--name", "n", "--version", "1", "--hmac-key-file",
               "{dir}"), 2, "--hmac-key-file {dir}: is a directory"),
    ("train", ("--site", "{missing}", "--registry", "{tmp}/r", "--name", "n", "--version", "1"), 2, "no such file"),
    ("train", ("--site", "{site}", "--registry", "{file}", "--name", "n", "--version", "1", "--unsigned"), 2,
     "--registry {file}: is a file"),
    ("train", ("--site", "{site}", "--registry", "{tmp}/r", "--name", "n", "--version", "1", "--trees", "0"), 2,
     "--trees: must be from 1"),
    ("train", ("--site", "{site}", "--registry", "{tmp}/r", "--name", "n", "--version", "1", "--assets", "99",
               "--unsigned"), 2, "the site has only"),
    ("train", ("--site", "{site}", "--registry", "{tmp}/r", "--name", "n", "--version", "1"), 1, "no signing key"),
    ("train", ("--site", "{site}", "--registry", "{tmp}/r", "--name", "n", "--version", "1", "--unsigned",
               "--lineage-file", "{missing}/l.jsonl"), 2, "--lineage-file {missing}/l.jsonl: directory"),
    # schema
    ("schema", (), 2, "the following arguments are required: which"),
    ("schema", ("alerts",), 2, "invalid choice: 'alerts'"),
    ("schema", ("site", "--out", "{dir}"), 2, "--out {dir}: is a directory; give a file name"),
    ("schema", ("outputs", "--out", "{missing}/s.json"), 2, "does not exist"),
    # audit
    ("audit", (), 2, "the following arguments are required: audit_command"),
    ("audit verify", (), 2, "give FILE (a JSONL export) or --site"),
    ("audit verify", ("{missing}",), 2, "FILE {missing}: no such file"),
    ("audit verify", ("{dir}",), 2, "FILE {dir}: is a directory"),
    ("audit verify", ("{file}",), 1, "broken: entry 1: not an aiotstream.audit/1 entry"),
    ("audit verify", ("{empty_jsonl}",), 1, "{empty_jsonl}: no audit entries"),
    ("audit verify", ("{file}", "--site", "{site}"), 2, "give FILE or --brokers/--site, not both"),
    ("audit verify", ("--site", "s1"), 2, "--site s1 is a site id: give --brokers too"),
    ("audit verify", ("--site", "no/such", "--brokers", "{dead}"), 2, "neither a site config file nor a site id"),
    ("audit verify", ("--site", "{missing}.toml"), 2, "--site {missing}.toml: no such file"),
    ("audit verify", ("--site", "s1", "--brokers", "{dead}", *W), 1, "no Kafka broker answers at {dead}"),
    # prune
    ("prune", ("--site", "{site}"), 2, "the following arguments are required: --lake"),
    ("prune", ("--site", "{missing}", "--lake", "{dir}"), 2, "--site {missing}: no such file"),
    ("prune", ("--site", "{site}", "--lake", "{missing}"), 2, "--lake {missing}: no such directory"),
    ("prune", ("--site", "{site}", "--lake", "{file}"), 2, "--lake {file}: is a file"),
    ("prune", ("--site", "{bad_toml}", "--lake", "{dir}"), 2, "not valid TOML"),
    # dataset (and train --dataset)
    ("dataset", (), 2, "the following arguments are required: COMMAND"),
    ("dataset create", ("--datasets", "{tmp}/ds", "--site", "s1"), 2,
     "the following arguments are required: --lake"),
    ("dataset create", ("--datasets", "{tmp}/ds", "--site", "s1", "--lake", "{missing}"), 2,
     "--lake {missing}: no such directory"),
    ("dataset create", ("--datasets", "{file}", "--site", "s1", "--lake", "{dir}"), 2,
     "--datasets {file}: is a file"),
    ("dataset create", ("--datasets", "{tmp}/ds", "--site", "s1", "--lake", "{dir}", "--from", "yesterday"), 2,
     "--from 'yesterday' is not a time"),
    ("dataset create", ("--datasets", "{tmp}/ds", "--site", "a/b", "--lake", "{dir}"), 2,
     "neither a site config file nor a site id"),
    ("dataset create", ("--datasets", "{tmp}/ds", "--site", "s1", "--lake", "{dir}"), 1,
     "no score files for site 's1'"),
    ("dataset list", ("--datasets", "{file}"), 2, "--datasets {file}: is a file"),
    ("dataset show", ("abc", "--datasets", "{dir}"), 1, "no dataset in {dir} with id 'abc'"),
    ("dataset diff", ("abc", "--datasets", "{dir}"), 2, "the following arguments are required: b"),
    ("dataset verify", ("0" * 32, "--datasets", "{dir}"), 1, "no dataset 00000000"),
    ("dataset prune", ("--datasets", "{dir}", "--older-than", "7d"), 2,
     "the following arguments are required: --registry"),
    ("dataset prune", ("--datasets", "{dir}", "--older-than", "7 days", "--registry", "{dir}"), 2,
     "--older-than '7 days' is not a duration"),
    ("dataset prune", ("--datasets", "{dir}", "--older-than", "7d", "--registry", "{missing}"), 2,
     "--registry {missing}: no such directory"),
    ("train", ("--site", "{site}", "--registry", "{tmp}/r", "--name", "n", "--version", "1", "--unsigned",
               "--dataset", "abc"), 2, "--dataset ID and --datasets DIR go together"),
    ("retrain", (), 2, "the following arguments are required: --site"),
    ("retrain", ("--site", "{missing}"), 2, "--site {missing}: no such file"),
    ("retrain", ("--site", "{site}"), 2, "has no [model.onnx.loop] table"),
    ("retrain", ("--site", "{loop_site}", "--brokers", "{dead}", *W), 1, "no Kafka broker answers at {dead}"),
    ("retrain", ("--site", "{loop_site}", "--state", "{dir}", "--brokers", "{dead}", *W), 2,
     "--state {dir}: is a directory"),
    ("retrain", ("--site", "{loop_auth_site}", "--brokers", "{dead}", *W), 2,
     "the site has [auth]: give --principal and --key"),
    ("retrain", ("--site", "{loop_site}", "--broker-wait", "0"), 2, "--broker-wait: must be greater than 0"),
    ("model", (), 2, "the following arguments are required: COMMAND"),
    ("model card", ("pm@1", "--registry", "{missing}"), 2, "--registry {missing}: no such directory"),
    ("model card", ("pm", "--registry", "{dir}"), 2, "'pm': give the model as NAME@VERSION"),
    ("model card", ("pm@1", "--registry", "{dir}"), 1, "no version '1' of model 'pm'"),
    ("train", ("--site", "{site}", "--registry", "{tmp}/r", "--name", "n", "--version", "1", "--unsigned",
               "--dataset", "abc", "--datasets", "{dir}", "--assets", "1"), 2, "--assets is for simulator data"),
    # auth
    ("auth", (), 2, "the following arguments are required: auth_command"),
    ("auth keygen", ("--principal", "ana"), 2, "the following arguments are required: --out-dir"),
    ("auth keygen", ("--out-dir", "{file}", "--principal", "ana"), 2, "--out-dir {file}: is a file"),
    ("auth keygen", ("--out-dir", "{tmp}/k", "--principal", "a b"), 2, "--principal 'a b': 1..64 of letters"),
    ("auth keygen", ("--out-dir", "{tmp}/k", "--principal", "ana", "--passphrase-file", "{missing}"), 2,
     "--passphrase-file {missing}: no such file"),
    ("auth keygen", ("--out-dir", "{tmp}/k", "--principal", "ana", "--passphrase-file", "{empty_jsonl}"), 1,
     "is empty (the secret is its first line)"),
    ("auth sign", ("--principal", "ana"), 2, "the following arguments are required: --key"),
    ("auth sign", ("--principal", "ana", "--key", "{missing}"), 2, "--key {missing}: no such file"),
    ("auth sign", ("--principal", "ana", "--key", "{dir}"), 2, "--key {dir}: is a directory"),
    ("auth sign", ("--principal", "ana", "--key", "{file}"), 1, "is not a PEM private key"),
    ("auth sign", ("--principal", "ana", "--key", "{file}", "--alg", "hmac-sha256"), 1, "is not UTF-8 text"),
    ("auth sign", ("--principal", "ana", "--key", "{file}", "--alg", "rsa"), 2, "invalid choice: 'rsa'"),
    ("auth sign", ("--principal", "a/b", "--key", "{file}"), 2, "--principal 'a/b': 1..64 of letters"),
    ("auth sign", ("--principal", "ana", "--key", "{file}", "--alg", "hmac-sha256", "--passphrase-file",
                   "{file}"), 2, "--passphrase-file is for an encrypted Ed25519 key"),
    # (hash-password's checks of the password, which read stdin, are in test_hash_password_* below)
    ("auth hash-password", ("--min-length", "0"), 2, "--min-length: must be from 1"),
]


def _leaf_commands(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[str]:
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs and path:
        yield " ".join(path)
    for action in subs:
        for name, sub in action.choices.items():
            yield from _leaf_commands(sub, path + (name,))


def test_every_subcommand_has_cases() -> None:
    covered = {cmd for cmd, *_ in CASES}
    missing = sorted(set(_leaf_commands(build_parser())) - covered)
    assert not missing, f"add rows for {missing} to CASES"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("cli-errors")
    (tmp / "a-file").write_bytes(b"\x00\x01 not text, not toml\xff\n")
    (tmp / "a-dir").mkdir()
    (tmp / "bad.toml").write_bytes(b"\x00\x01 not text, not toml\xff\n")
    (tmp / "r.csv").write_text("asset,ts,metric,value\nasset-000,1767225600000000000,temperature,1.5\n")
    (tmp / "cols.csv").write_text("a,b\n1,2\n")
    (tmp / "empty.csv").write_text("")
    (tmp / "header.csv").write_text("ts,value\n")
    (tmp / "bad-ts.csv").write_text("ts,value\n2026-01-01T00:00:00Z,1.5\nyesterday,2.5\n")
    (tmp / "empty.jsonl").write_bytes(b"")
    site = tmp / "site.toml"
    site.write_text(KAFKA_SITE.read_text())
    # a site with [auth]: an engineer who signs in with a password, the console's principal (Ed25519)
    from argon2 import PasswordHasher

    from aiotstream.auth import generate_keypair

    priv, pub = generate_keypair()
    (tmp / "console.key").write_bytes(priv)
    (tmp / "console.pub").write_bytes(pub)
    (tmp / "eve.pw").write_text(PasswordHasher(time_cost=1, memory_cost=1024).hash("eve's long password") + "\n")
    (tmp / "eve.secret").write_text("eve's hmac secret, long enough\n")
    (tmp / "short.secret").write_text("too short\n")
    auth = """
[[auth.principals]]
id = "eve"
roles = ["engineer"]
secret_file = "{tmp}/eve.secret"
password_hash_file = "{tmp}/{pw}"
[[auth.principals]]
id = "console"
roles = ["console"]
public_key_file = "{tmp}/console.pub"
"""
    (tmp / "auth-site.toml").write_text(KAFKA_SITE.read_text() + auth.format(tmp=tmp, pw="eve.pw"))
    (tmp / "bad-hash-site.toml").write_text(KAFKA_SITE.read_text() + auth.format(tmp=tmp, pw="a-file"))
    # sites with the model loop (ONNX models, [model.onnx.loop], a Parquet lake), one also with [auth]
    for name, base in (("loop-site.json", KAFKA_SITE.read_text()),
                       ("loop-auth-site.json", KAFKA_SITE.read_text() + auth.format(tmp=tmp, pw="eve.pw"))):
        data = tomllib.loads(base)
        data["model"] = {**data.get("model", {}), "kind": "onnx", "name": "pm",
                         "onnx": {"registry": f"{tmp}/reg", "allow_unsigned": True,
                                  "loop": {"datasets": f"{tmp}/datasets"}}}
        data.setdefault("outputs", {})["parquet"] = {"directory": f"{tmp}/lake", "kinds": ["score", "alert"]}
        (tmp / name).write_bytes(orjson.dumps(data))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        yield {"tmp": str(tmp), "file": str(tmp / "a-file"), "dir": str(tmp / "a-dir"), "missing": str(tmp / "nope"), "bad_toml": str(tmp / "bad.toml"),
               "site": str(site), "csv": str(tmp / "r.csv"), "cols": str(tmp / "cols.csv"),
               "empty": str(tmp / "empty.csv"), "header_only": str(tmp / "header.csv"),
               "bad_ts": str(tmp / "bad-ts.csv"),
               "empty_jsonl": str(tmp / "empty.jsonl"),
               "auth_site": str(tmp / "auth-site.toml"), "bad_hash_site": str(tmp / "bad-hash-site.toml"),
               "console_key": str(tmp / "console.key"), "short_secret": str(tmp / "short.secret"),
               "loop_site": str(tmp / "loop-site.json"), "loop_auth_site": str(tmp / "loop-auth-site.json"),
               "dead": f"127.0.0.1:{free_port()}", "busy": str(busy.getsockname()[1])}
    finally:
        busy.close()


@pytest.mark.parametrize(("command", "args", "rc", "text"), CASES,
                         ids=[f"{c or 'aiotstream'} {' '.join(a)}"[:80] for c, a, *_ in CASES])
def test_bad_arguments_end_in_one_line(ctx: dict[str, str], command: str, args: tuple[str, ...], rc: int,
                                       text: str) -> None:
    argv = [*command.split(), *(a.format(**ctx) for a in args)]
    proc = subprocess.run(cli(*argv), capture_output=True, text=True, timeout=90, check=False, cwd=ctx["tmp"])
    err = proc.stderr
    assert "Traceback" not in err and "panicked" not in err, err[-3000:]
    assert "%3|" not in err and "%4|" not in err and "CONFWARN" not in err, err[-3000:]  # librdkafka's own lines
    assert len(err.strip().splitlines()) == 1, err[-3000:]
    assert proc.returncode == rc, (proc.returncode, err)
    assert text.format(**ctx) in err, err


def test_hash_password_prints_an_argon2_hash_of_the_password_on_stdin(ctx: dict[str, str]) -> None:
    from argon2 import PasswordHasher

    proc = subprocess.run(cli("auth", "hash-password"), input="correct horse battery\n", capture_output=True,
                          text=True, timeout=90, check=False, cwd=ctx["tmp"])
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith("$argon2id$") and "correct horse" not in proc.stdout + proc.stderr
    assert PasswordHasher().verify(line, "correct horse battery")


@pytest.mark.parametrize(("password", "args", "text"), [
    ("short\n", (), "the password has 5 characters: give at least 12 (--min-length)"),
    ("", (), "the password has 0 characters"),
    ("x" * 1025 + "\n", ("--min-length", "1"), "the password is longer than 1024 characters"),
])
def test_hash_password_refuses_a_short_or_long_password_in_one_line(ctx: dict[str, str], password: str,
                                                                   args: tuple[str, ...], text: str) -> None:
    proc = subprocess.run(cli("auth", "hash-password", *args), input=password, capture_output=True, text=True,
                          timeout=90, check=False, cwd=ctx["tmp"])
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and text in proc.stderr, proc.stderr
    assert password.strip() not in proc.stderr or not password.strip()
