"""Scale out and survive: multi-worker/process equivalence, kill -9 recovery, broker outage.

All runs read the same input (simulator + malformed messages) from a Tansu broker
that keeps its data in an S3-compatible store (moto on loopback), so the broker
itself can be stopped and restarted. Outputs are compared by their deterministic
ids against an uninterrupted single-worker reference run of the same config.
"""
from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from support import OUTPUT_KINDS, by_id, cli, read_jsonl_outputs, read_outputs, read_topic, run_cli, stable

from aiotstream.audit import verify
from aiotstream.config import SiteConfig
from aiotstream.dedupe import Deduper
from aiotstream.io.broker import S3Store, TansuBroker, free_port
from aiotstream.io.kafka import ensure_topics
from aiotstream.io.simulator import interleave, write_to_kafka
from aiotstream.sim.plant import PlantSimulator, malformed_messages

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def site_toml(site: str) -> str:
    return f"""
[site]
id = "{site}"
[[asset_groups]]
prefix = "m-"
count = 10
[inputs]
topics = ["rec.waveforms", "rec.readings"]
tail = false
poll_batch = 200
[kpi]
period_s = 10
[[control.actuators]]
name = "speed"
initial = 1800
min = 600
max = 1800
ack_timeout_s = 0
[[control.rules]]
name = "slow"
actuator = "speed"
when = {{ alert_type = "anomaly" }}
action = {{ delta = -300 }}
revert = {{ set = 1800 }}
mode = "auto"
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    log = tmp_path_factory.mktemp("tansu-s3") / "tansu.log"
    with S3Store() as store, TansuBroker(store=store, log_path=log) as b:
        yield b


@pytest.fixture(scope="module")
def stream(broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """10 assets x 120 s with 3 faults and 100 malformed messages, in the broker; plus a reference run."""
    tmp = tmp_path_factory.mktemp("rec")
    sites = {}
    for name in ("rec-a", "rec-b", "rec-c"):
        (tmp / f"{name}.toml").write_text(site_toml(name))
        sites[name] = tmp / f"{name}.toml"
    cfg = SiteConfig.load(sites["rec-a"])
    sim = PlantSimulator(cfg.all_assets(), duration_s=120.0, n_faults=3, seed=5, warmup_s=25.0)
    bad = malformed_messages(100, assets=[a.id for a in sim.assets], start_ns=sim.start_ns, seed=5)
    ensure_topics(broker.bootstrap, ["rec.waveforms", "rec.readings"], partitions=4)
    write_to_kafka(interleave(sim.messages(), bad), broker.bootstrap, "rec.waveforms", "rec.readings")
    refs = {}
    for name, path in sites.items():  # the site id is in the config hash, so each site has its own reference
        run_cli("run", "--site", str(path), "--brokers", broker.bootstrap, "--once", "--out-dir", str(tmp / name))
        refs[name] = read_jsonl_outputs(tmp / name)
    return {"sim": sim, "sites": sites, "refs": refs, "tmp": tmp}


def assert_same(reference: dict, got: dict, allow_replays: bool = False) -> int:
    """Same outputs as the reference: every id present, nothing else, replays identical. Returns #replays."""
    replays = 0
    for kind in OUTPUT_KINDS:
        want = by_id(reference[kind])
        assert len(want) == len(reference[kind]), f"reference {kind} has duplicate ids"
        counts = Counter(r["id"] for r in got[kind])
        missing = set(want) - set(counts)
        assert not missing, f"{len(missing)} {kind} output(s) missing, e.g. {sorted(missing)[:3]}"
        extra = set(counts) - set(want)
        assert not extra, f"{len(extra)} unexpected {kind} output(s), e.g. {[by_id(got[kind])[i] for i in sorted(extra)[:1]]}"
        for rid, rec in by_id(got[kind]).items():
            assert rec == want[rid], f"{kind} {rid} differs from the reference"
        dups = sum(n - 1 for n in counts.values())
        if not allow_replays:
            assert dups == 0, f"{dups} duplicate {kind} output(s)"
        # a replayed record must carry the same payload as its first copy
        seen: dict[str, dict] = {}
        for r in got[kind]:
            body = stable(r)
            assert seen.setdefault(r["id"], body) == body, f"replayed {kind} {r['id']} differs"
        replays += dups
    return replays


def test_multi_worker_and_multi_process_runs_match_single_worker(stream: dict, broker: TansuBroker) -> None:
    site, tmp, b = stream["sites"]["rec-a"], stream["tmp"], broker.bootstrap
    ref = stream["refs"]["rec-a"]
    # one process, two workers
    run_cli("run", "--site", str(site), "--brokers", b, "--once", "-w", "2", "--out-dir", str(tmp / "w2"))
    assert_same(ref, read_jsonl_outputs(tmp / "w2"))
    # two processes x two workers on loopback
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    procs = [subprocess.Popen(cli("run", "--site", str(site), "--brokers", b, "--once", "-w", "2",
                                  "-i", str(i), "-a", addresses, "--out-dir", str(tmp / "p2w2")),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    assert len(list((tmp / "p2w2").glob("scores-w*.jsonl"))) == 4  # one file per worker
    assert_same(ref, read_jsonl_outputs(tmp / "p2w2"))


def test_kill_9_five_times_loses_nothing(stream: dict, broker: TansuBroker,
                                         record_property: pytest.RecordProperty) -> None:
    site, tmp = stream["sites"]["rec-b"], stream["tmp"]
    recovery = tmp / "recovery-b"
    argv = cli("run", "--site", str(site), "--brokers", broker.bootstrap, "--once", "--recovery", str(recovery),
               "--epoch-s", "0.1")
    rng = random.Random(9)
    kills = 0
    ensure_topics(broker.bootstrap, [f"rec-b.{k}" for k in (*OUTPUT_KINDS, "audit")], partitions=3)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "kill-watch", "enable.auto.commit": False})
    consumer.assign([TopicPartition("rec-b.scores", p, 0) for p in range(3)])
    total = len(stream["refs"]["rec-b"]["scores"])
    seen: set[str] = set()
    for k in range(5):
        # kill at a random point in each sixth of the stream (by windows scored so far)
        target = int(total * (k + rng.uniform(0.6, 1.0)) / 6)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(seen) < target and proc.poll() is None and time.monotonic() < deadline:
            seen.update(orjson.loads(m.value())["id"] for m in consumer.consume(500, timeout=0.05) if not m.error())
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    consumer.close()
    before_final = len(read_outputs(broker.bootstrap, "rec-b")["scores"])
    final = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert final.returncode == 0, final.stderr[-3000:]
    assert kills == 5, f"the flow finished before the 5th kill ({kills} kills)"
    got = read_outputs(broker.bootstrap, "rec-b")
    replays = assert_same(stream["refs"]["rec-b"], got, allow_replays=True)
    # the last restart resumed from a snapshot instead of starting over (which would emit every window again)
    final_new = len(got["scores"]) - before_final
    assert final_new < total, f"the final run emitted all {total} windows again: it did not resume"
    # a reader that drops ids it has seen gets every output exactly once
    for kind in OUTPUT_KINDS:
        once = [r["id"] for r in Deduper().filter(got[kind])]
        assert sorted(once) == sorted(r["id"] for r in stream["refs"]["rec-b"][kind])
    record_property("replayed_outputs", replays)
    # the audit trail: every chain verifies with the replays; the assets' chains are the reference run's,
    # entry for entry (the heads resumed from the snapshots); the config chain has one load per start
    audit = [orjson.loads(m.value()) for m in read_topic(broker.bootstrap, "rec-b.audit")]
    rep = verify(audit)
    assert rep.problem is None, rep.problem
    ref_audit = [orjson.loads(line) for line in (stream["tmp"] / "rec-b" / "audit.jsonl").read_bytes().splitlines()]
    assets = {(e["id"], e["hash"]) for e in audit if e["chain"] != "config"}
    assert assets == {(e["id"], e["hash"]) for e in ref_audit if e["chain"] != "config"}
    assert any(e["what"] == "command.emitted" for e in audit)
    starts = sorted({e["details"]["start"] for e in audit if e["chain"] == "config"})
    assert len(starts) >= 2 and starts == list(range(len(starts))), starts  # a resume continues the chain
    print(f"kill -9 x{kills}: no output lost; {replays} replayed output(s) with identical ids and payloads; "
          f"the final run resumed and emitted {final_new} of {total} windows")


def test_broker_outage_of_10s_mid_run_loses_nothing(stream: dict, broker: TansuBroker) -> None:
    site = stream["sites"]["rec-c"]
    ensure_topics(broker.bootstrap, [f"rec-c.{k}" for k in OUTPUT_KINDS], partitions=3)
    proc = subprocess.Popen(cli("run", "--site", str(site), "--brokers", broker.bootstrap, "--once", "--epoch-s", "1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "outage-watch", "enable.auto.commit": False})
    consumer.assign([TopicPartition("rec-c.scores", p, 0) for p in range(3)])
    seen, deadline = 0, time.monotonic() + 120
    while seen < 100 and proc.poll() is None and time.monotonic() < deadline:
        seen += sum(1 for m in consumer.consume(500, timeout=0.1) if not m.error())
    consumer.close()
    assert proc.poll() is None, "the flow finished before the outage could start"
    broker.restart(down_s=10.0)  # the broker process is gone for 10 s; its data lives in the S3 store
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    try:
        assert_same(stream["refs"]["rec-c"], read_outputs(broker.bootstrap, "rec-c"), allow_replays=True)
    except AssertionError as exc:  # say what the flow saw of the outage (retries, dead letters, losses)
        raise AssertionError(f"{exc}\nthe flow's log (end):\n{err[-4000:]}") from None
