"""The console in a real browser against a real broker and a running flow: a simulator fault opens an alert,
the operator acknowledges it in the page with a comment, and the flow's lifecycle output changes (the
``acknowledged`` event on the alerts topic, and the page showing it). On a site with ``[auth]``: a wrong
password is refused, an operator cannot approve, an engineer signs in and approves, the flow takes the
message the console signed on the engineer's behalf, and the audit trail names the engineer and verifies.

Headless Chromium is Debian's (``apt-get install -y chromium``), driven by Playwright through its
``executable_path``: nothing is downloaded (never ``playwright install``). Without the binary the test is
skipped, naming it and the apt command. ``AIOTSTREAM_CONSOLE_SCREENSHOTS=docs/console`` also writes the
pages' screenshots there (how docs/console/*.png were made); otherwise they go to the test's tmp dir.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from support import Follow, cli, read_topic, start_flow, stop_flow, wait_for

from aiotstream.codecs import decode_feedback
from aiotstream.config import SiteConfig
from aiotstream.io.broker import free_port
from aiotstream.io.kafka import ensure_topics, input_topics, make_producer, output_topics
from aiotstream.io.simulator import write_to_kafka
from aiotstream.records import Position
from aiotstream.sim.plant import Fault, PlantSimulator, ProductionSpec

pytestmark = pytest.mark.integration

S = 1_000_000_000
START = 1_767_225_600_000_000_000
ONSET, END, SPLIT = START + 30 * S, START + 40 * S, START + 34 * S
WAIT_S = 120.0
# AIOTSTREAM_CHROMIUM names another Chromium build (then only that one is tried)
CANDIDATES = [os.environ["AIOTSTREAM_CHROMIUM"]] if os.environ.get("AIOTSTREAM_CHROMIUM") else [
    shutil.which("chromium"), "/usr/bin/chromium"]
CHROMIUM = next((p for p in CANDIDATES if p and os.path.isfile(p) and os.access(p, os.X_OK)), None)
SHOTS = os.environ.get("AIOTSTREAM_CONSOLE_SCREENSHOTS")

BAD_READINGS = [b"{not json", b"{not json either", b'{"asset": "press-2", "metric": "temperature"}']
SITE_TOML = """
[site]
id = "{site}"
[[assets]]
id = "press-1"
line = "l1"
ideal_cycle_time_s = 2.0
[[assets]]
id = "press-2"
line = "l1"
ideal_cycle_time_s = 2.0
[window]
idle_close_s = 2
[model]
warmup_windows = 10
drift_detector = "none"
[alerts]
escalate_after_s = 0
[kpi]
periods_s = [5]
[[control.actuators]]
name = "speed"
unit = "rpm"
initial = 1800
min = 600
max = 1800
ack_timeout_s = 600
[[control.rules]]
name = "slow"
actuator = "speed"
when = {{ alert_type = "anomaly" }}
action = {{ set = 1200 }}
mode = "approval"
approval_timeout_s = 600
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        tried = " nor ".join(str(c) for c in CANDIDATES if c) or "`chromium` on PATH"
        pytest.skip(f"chromium is missing (no executable {tried}): apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing: "
                                   "pip install -e '.[dev]'")
    with sync_api.sync_playwright() as pw:
        # --no-sandbox: CI runs the tests as root, where Chromium's sandbox refuses to start
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def plant(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A flow tailing the site's topics, fed the first 34 s of a plant whose press-1 sticks at 30 s, and a
    console on a free loopback port."""
    tmp = tmp_path_factory.mktemp("console")
    sid = f"it-console-{uuid.uuid4().hex[:6]}"
    site = tmp / "site.toml"
    site.write_text(SITE_TOML.format(site=sid))
    cfg = SiteConfig.load(site)
    sim = PlantSimulator(cfg.all_assets(), duration_s=60.0, seed=21, warmup_s=0.0,
                         faults=[Fault("press-1", "sensor_stuck", ONSET, END, "x")],
                         production=ProductionSpec(cycle_time_s=2.0, scrap_rate=0.05, down_delay_s=1.0))
    msgs = [m for m in sim.messages() if m.t_ns < SPLIT]
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, input_topics(cfg) + list(topics.values()), partitions=2)
    wave, read = cfg.inputs.topics
    write_to_kafka(iter(msgs), kafka_broker, wave, read)
    p = make_producer(kafka_broker)
    for bad in BAD_READINGS:  # dead letters for the KPI page's table
        p.produce(read, bad, key=b"press-2")
    assert p.flush(10) == 0
    flow_log, console_log = tmp / "flow.log", tmp / "console.log"
    flow = start_flow(site, kafka_broker, flow_log)
    out = Follow(kafka_broker, topics, group="it-console")
    port = free_port()
    with console_log.open("w") as logf:
        console = subprocess.Popen(cli("console", "--site", str(site), "--brokers", kafka_broker, "--port", str(port),
                                       "--refresh-s", "0.5"), stdout=logf, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        opened = out.wait_for("an opened alert", lambda: [a for a in out.records["alert"]
                                                          if a["asset"] == "press-1" and a["event"] == "opened"],
                              flow, flow_log, WAIT_S)[0]
        out.wait_for("a command awaiting approval",
                     lambda: [c for c in out.records["command"] if c["status"] == "awaiting_approval"],
                     flow, flow_log, WAIT_S)
        wait_for("the console's /healthz", lambda: _answers(f"{url}/healthz") or console.poll() is not None,
                 WAIT_S, 0.2)
        assert console.poll() is None, console_log.read_text()[-3000:]
        yield {"cfg": cfg, "out": out, "opened": opened, "url": url, "flow": flow, "flow_log": flow_log,
               "console_log": console_log, "brokers": kafka_broker, "shots": Path(SHOTS) if SHOTS else tmp}
    finally:
        console.terminate()
        console.wait(30)
        stop_flow(flow)
        out.c.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_an_alert_acknowledged_in_the_page_is_acknowledged_by_the_flow(browser: object, plant: dict) -> None:
    from playwright.sync_api import expect

    out, opened, url = plant["out"], plant["opened"], plant["url"]
    aid = opened["alert_id"]
    shots: Path = plant["shots"]
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{url}/alerts")
    page.fill("#operator", "ana")
    row = page.locator(f'tr[data-alert-id="{aid}"]')
    expect(row).to_be_visible(timeout=WAIT_S * 1000)
    expect(row.locator(".status")).to_contain_text("open")
    expect(row).to_contain_text("press-1")
    expect(row).to_contain_text("anomaly")
    page.screenshot(path=str(shots / "alerts.png"), full_page=True)
    for name in ("commands", "kpis"):  # (models.png: from the ONNX site below)
        page.goto(f"{url}/{name}")
        if name == "commands":
            expect(page.locator("tr[data-command-id]").first).to_be_visible(timeout=WAIT_S * 1000)
        if name == "kpis":
            expect(page.locator("svg.chart").first).to_be_visible(timeout=WAIT_S * 1000)
            expect(page.locator("table.dead")).to_contain_text("bad_json", timeout=WAIT_S * 1000)
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    # the operator acknowledges the alert in the page, with a comment
    page.goto(f"{url}/alerts")
    row = page.locator(f'tr[data-alert-id="{aid}"]')
    row.locator("input[name=note]").fill("sensor stuck on press-1, maintenance called")
    row.locator("button.ack").click()
    expect(page.locator(".flash.ok")).to_contain_text("acknowledge anomaly alert on press-1")

    # the flow's lifecycle output changes: an acknowledged event for this alert, by the operator
    acked = out.wait_for("the flow's acknowledged event", lambda: [
        a for a in out.records["alert"] if a["alert_id"] == aid and a["event"] == "acknowledged"],
        plant["flow"], plant["flow_log"], WAIT_S)[0]
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "ana" and acked["by"] == "ana"
    # ... through the feedback topic the flow already consumes, as a message its own decoder takes
    feedback_topic = plant["cfg"].inputs.feedback_topics[0]
    (msg,) = [m for m in read_topic(plant["brokers"], feedback_topic)
              if orjson.loads(m.value()).get("alert_id") == aid]
    fb = decode_feedback(msg.value(), Position(feedback_topic, msg.partition(), msg.offset()))
    assert (fb.type, fb.asset, fb.alert_id, fb.by, fb.note) == (
        "ack", "press-1", aid, "ana", "sensor stuck on press-1, maintenance called")
    assert acked["inputs"][0]["topic"] == feedback_topic and acked["inputs"][0]["first_offset"] == msg.offset()

    # the page shows it acknowledged, by whom (its live refresh, no reload)
    row = page.locator(f'tr[data-alert-id="{aid}"]')
    expect(row.locator(".status")).to_contain_text("acknowledged", timeout=WAIT_S * 1000)
    expect(row.locator(".status")).to_contain_text("by ana")
    expect(row.locator("button.ack")).to_have_count(0)
    page.screenshot(path=str(shots / "alerts-acknowledged.png"), full_page=True)

    # an invalid action says why in the page, never a stack trace: acknowledging it again, an unknown id
    for target, said in ((aid, "is already acknowledged (by ana"), ("0" * 32, "unknown alert id")):
        page.evaluate("""([target]) => { const f = document.createElement('form'); f.method = 'post';
            f.action = '/alerts/' + target + '/ack'; const by = document.createElement('input');
            by.name = 'by'; by.type = 'hidden'; f.appendChild(by); document.body.appendChild(f); f.requestSubmit(); }""",
                      [target])
        expect(page.locator(".flash.error")).to_contain_text(said)
        assert "Traceback" not in page.content()
    # a form on another site's page aimed at this console is refused (the browser says where it came from)
    resp = page.request.post(f"{url}/alerts/{aid}/clear", form={"by": "mallory"}, max_redirects=0,
                             headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert resp.status == 303 and "refused" in resp.headers["location"]
    sent = [m for m in read_topic(plant["brokers"], feedback_topic) if orjson.loads(m.value()).get("alert_id") == aid]
    assert len(sent) == 1, "only the operator's acknowledgement reached the feedback topic"
    assert len([a for a in out.records["alert"] if a["alert_id"] == aid and a["event"] == "acknowledged"]) == 1
    # the lineage page of the alert; an unknown id there is a page that says so
    page.goto(f"{url}/alerts/{aid}")
    expect(page.locator("dl.facts").first).to_contain_text(aid)
    expect(page.locator("body")).to_contain_text(f"{plant['cfg'].inputs.topics[0]} partition")
    resp = page.goto(f"{url}/alerts/{'f' * 32}")
    assert resp is not None and resp.status == 404
    expect(page.locator(".flash.error")).to_contain_text("unknown alert id")
    page.close()


def test_a_command_approved_in_the_page_is_emitted_by_the_flow(browser: object, plant: dict) -> None:
    from playwright.sync_api import expect

    out, url = plant["out"], plant["url"]
    (waiting,) = [c for c in out.records["command"] if c["status"] == "awaiting_approval"]
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{url}/commands")
    page.fill("#operator", "bo")
    row = page.locator(f'tr[data-command-id="{waiting["command_id"]}"]')
    expect(row).to_contain_text("within the envelope", timeout=WAIT_S * 1000)
    row.locator("button.approve").click()
    expect(page.locator(".flash.ok")).to_contain_text("approve speed = 1200.0 on press-1")
    emitted = out.wait_for("the approved command emitted", lambda: [
        c for c in out.records["command"] if c["command_id"] == waiting["command_id"] and c["status"] == "emitted"],
        plant["flow"], plant["flow_log"], WAIT_S)[0]
    assert emitted["by"] == "bo" and emitted["value"] == 1200.0
    expect(page.locator(f'tr[data-command-id="{waiting["command_id"]}"]').first).to_contain_text(
        "emitted", timeout=WAIT_S * 1000)
    # every message the console sent was taken by the flow: none of them is a dead letter
    feedback_topic = plant["cfg"].inputs.feedback_topics[0]
    assert not [d for d in out.records["deadletter"] if d["source"]["topic"] == feedback_topic]
    page.close()


# ---- models: promote and roll back in the page (an ONNX site) ---------------------------------------------------
@pytest.fixture(scope="module")
def onnx_plant(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """An ONNX site (champion pm@1.0.0, shadow pm@1.0.0-int8; models trained here, signed with a key made here)
    whose flow tails the first 20 s of a 40 s plant, and a console on a free loopback port."""
    from aiotstream.config import default_site
    from aiotstream.models.registry import ModelRegistry, generate_keypair
    from aiotstream.pdm.training import train_and_publish

    tmp = tmp_path_factory.mktemp("console-models")
    priv, pub = generate_keypair(tmp / "keys")
    reg = ModelRegistry(tmp / "reg", verify_key=pub)
    train_and_publish(default_site(4), reg, "pm", "1.0.0", duration_s=30.0, seed=1, signing_key=priv,
                      n_estimators=50)
    sid = f"it-console-m-{uuid.uuid4().hex[:6]}"
    data = default_site(3, site_id=sid).model_dump(mode="json")
    data["model"] = {"kind": "onnx", "name": "pm", "version": "1.0.0", "drift_detector": "none",
                     "onnx": {"registry": str(tmp / "reg"), "verify_key": str(pub), "shadow": "1.0.0-int8",
                              "max_batch": 64, "max_delay_ms": 50}}
    data["window"] = {"idle_close_s": 6}
    site = tmp / "site.json"
    site.write_bytes(orjson.dumps(data))
    cfg = SiteConfig.load(site)
    sim = PlantSimulator(cfg.all_assets(), duration_s=40.0, seed=8, n_faults=0)
    msgs = list(sim.messages())
    split = sim.start_ns + 20 * S
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, input_topics(cfg) + list(topics.values()), partitions=2)
    wave, read = cfg.inputs.topics
    write_to_kafka((m for m in msgs if m.t_ns < split), kafka_broker, wave, read)
    flow_log, console_log = tmp / "flow.log", tmp / "console.log"
    flow = start_flow(site, kafka_broker, flow_log)
    out = Follow(kafka_broker, topics, group="it-console-m")
    port = free_port()
    with console_log.open("w") as logf:
        console = subprocess.Popen(cli("console", "--site", str(site), "--brokers", kafka_broker, "--port", str(port),
                                       "--refresh-s", "0.5"), stdout=logf, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        out.wait_for("scores", lambda: len(out.records["score"]) >= 30, flow, flow_log, WAIT_S)
        wait_for("the console's /healthz", lambda: _answers(f"{url}/healthz") or console.poll() is not None,
                 WAIT_S, 0.2)
        assert console.poll() is None, console_log.read_text()[-3000:]
        yield {"out": out, "url": url, "flow": flow, "flow_log": flow_log, "brokers": kafka_broker,
               "rest": [m for m in msgs if m.t_ns >= split], "wave": wave, "read": read,
               "shots": Path(SHOTS) if SHOTS else tmp}
    finally:
        console.terminate()
        console.wait(30)
        stop_flow(flow)
        out.c.close()


def test_a_model_promoted_and_rolled_back_in_the_page_is_switched_by_the_flow(browser: object,
                                                                              onnx_plant: dict) -> None:
    from playwright.sync_api import expect

    out, url = onnx_plant["out"], onnx_plant["url"]
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{url}/models")
    page.fill("#operator", "cy")
    champion = page.locator("table.models tr.live", has_text="pm@1.0.0")
    expect(champion.filter(has_text="champion").first).to_be_visible(timeout=WAIT_S * 1000)
    expect(page.locator("table.models tr.live", has_text="pm@1.0.0-int8").filter(has_text="shadow").first
           ).to_be_visible()
    expect(page.locator("button.rollback")).to_be_disabled()  # nothing promoted yet: nothing to go back to

    # promote the autoencoder, offered from the registry's listing
    page.select_option("select[name=ref]", "pm@1.0.0-ae")
    page.select_option("select[name=variant]", "champion")
    page.locator("form[action='/models/promote'] input[name=note]").fill("the autoencoder passed the gate")
    page.locator("button.promote").click()
    expect(page.locator(".flash.ok")).to_contain_text("promote pm@1.0.0-ae as champion")
    promoted = out.wait_for("the flow's promotion", lambda: [
        r for r in out.records["model"] if r["event"] == "promoted" and r["ref"] == "pm@1.0.0-ae"],
        onnx_plant["flow"], onnx_plant["flow_log"], WAIT_S)[0]
    assert promoted["by"] == "cy" and promoted["variant"] == "champion"
    # the rest of the plant's data is scored by the new champion; the page shows it live
    write_to_kafka(iter(onnx_plant["rest"]), onnx_plant["brokers"], onnx_plant["wave"], onnx_plant["read"])
    out.wait_for("scores by the new champion", lambda: [
        r for r in out.records["score"] if r["model"]["version"] == "1.0.0-ae"],
        onnx_plant["flow"], onnx_plant["flow_log"], WAIT_S)
    page.goto(f"{url}/models")
    expect(page.locator("table.models tr.live", has_text="pm@1.0.0-ae").first).to_be_visible(timeout=WAIT_S * 1000)
    expect(page.locator("table.events tr", has_text="pm@1.0.0-ae").first).to_contain_text("promoted")
    expect(page.locator("table.events tr", has_text="pm@1.0.0-ae").first).to_contain_text("cy")
    page.screenshot(path=str(onnx_plant["shots"] / "models.png"), full_page=True)

    # roll back: the config's champion again
    page.locator("form[action='/models/rollback'] input[name=note]").fill("back, to compare")
    expect(page.locator("button.rollback")).to_contain_text("Roll back to pm@1.0.0")
    page.locator("button.rollback").click()
    expect(page.locator(".flash.ok")).to_contain_text("roll back to pm@1.0.0 as champion")
    back = out.wait_for("the flow's roll-back", lambda: [
        r for r in out.records["model"] if r["event"] == "promoted" and r["ref"] == "pm@1.0.0"],
        onnx_plant["flow"], onnx_plant["flow_log"], WAIT_S)[0]
    assert back["by"] == "cy" and back["variant"] == "champion"
    page.close()


# ---- sign-in: a site with [auth] (an engineer and an operator with passwords, the console's Ed25519 key) -----------
PASSWORDS = {"eve": "eve's long passphrase", "olaf": "olaf's long passphrase"}
AUTH_TOML = """
[auth]
[[auth.principals]]
id = "eve"
roles = ["engineer"]
secret_file = "{tmp}/eve.secret"
password_hash_file = "{tmp}/eve.pw"
[[auth.principals]]
id = "olaf"
roles = ["operator"]
secret_file = "{tmp}/olaf.secret"
password_hash_file = "{tmp}/olaf.pw"
[[auth.principals]]
id = "console"
roles = ["console"]
public_key_file = "{tmp}/console.pub"
"""


@pytest.fixture(scope="module")
def auth_plant(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The first plant again (a command awaiting approval on press-1) on a site with [auth], its flow, and a
    console that signs as principal ``console`` on behalf of whoever signs in."""
    from aiotstream.auth import generate_keypair

    tmp = tmp_path_factory.mktemp("console-auth")
    priv, pub = generate_keypair()
    (tmp / "console.key").write_bytes(priv)
    (tmp / "console.key").chmod(0o600)
    (tmp / "console.pub").write_bytes(pub)
    (tmp / "session.secret").write_text(uuid.uuid4().hex * 2 + "\n")
    for user, password in PASSWORDS.items():  # the hashes as an administrator makes them
        made = subprocess.run(cli("auth", "hash-password"), input=password + "\n", capture_output=True, text=True,
                              timeout=60, check=True)
        (tmp / f"{user}.pw").write_text(made.stdout)
        (tmp / f"{user}.secret").write_text(f"{user}'s own HMAC secret for scripts\n")
    sid = f"it-console-a-{uuid.uuid4().hex[:6]}"
    site = tmp / "site.toml"
    site.write_text(SITE_TOML.format(site=sid) + AUTH_TOML.format(tmp=tmp))
    cfg = SiteConfig.load(site)
    assert cfg.auth is not None and len(cfg.auth.principals) == 3
    sim = PlantSimulator(cfg.all_assets(), duration_s=60.0, seed=21, warmup_s=0.0,
                         faults=[Fault("press-1", "sensor_stuck", ONSET, END, "x")],
                         production=ProductionSpec(cycle_time_s=2.0, scrap_rate=0.05, down_delay_s=1.0))
    topics = output_topics(cfg)
    ensure_topics(kafka_broker, input_topics(cfg) + list(topics.values()), partitions=2)
    wave, read = cfg.inputs.topics
    write_to_kafka((m for m in sim.messages() if m.t_ns < SPLIT), kafka_broker, wave, read)
    flow_log, console_log = tmp / "flow.log", tmp / "console.log"
    flow = start_flow(site, kafka_broker, flow_log)
    out = Follow(kafka_broker, topics, group="it-console-a")
    port = free_port()
    with console_log.open("w") as logf:
        console = subprocess.Popen(cli("console", "--site", str(site), "--brokers", kafka_broker, "--port", str(port),
                                       "--refresh-s", "0.5", "--principal", "console", "--key", str(tmp / "console.key"),
                                       "--session-secret-file", str(tmp / "session.secret")),
                                   stdout=logf, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        out.wait_for("a command awaiting approval",
                     lambda: [c for c in out.records["command"] if c["status"] == "awaiting_approval"],
                     flow, flow_log, WAIT_S)
        wait_for("the console's /healthz", lambda: _answers(f"{url}/healthz") or console.poll() is not None,
                 WAIT_S, 0.2)
        assert console.poll() is None, console_log.read_text()[-3000:]
        yield {"cfg": cfg, "out": out, "url": url, "flow": flow, "flow_log": flow_log, "site": site,
               "console_log": console_log, "brokers": kafka_broker, "shots": Path(SHOTS) if SHOTS else tmp}
    finally:
        console.terminate()
        console.wait(30)
        stop_flow(flow)
        out.c.close()


def _sign_in(page: object, user: str, password: str) -> None:
    page.fill("#user", user)  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    page.locator("button.signin").click()  # type: ignore[attr-defined]


def test_a_signed_in_engineer_approves_a_command_signed_for_them_and_the_audit_chain_verifies(
        browser: object, auth_plant: dict) -> None:
    import re

    from playwright.sync_api import expect

    out, url, brokers = auth_plant["out"], auth_plant["url"], auth_plant["brokers"]
    feedback_topic = auth_plant["cfg"].inputs.feedback_topics[0]
    (waiting,) = [c for c in out.records["command"] if c["status"] == "awaiting_approval"]
    cid = waiting["command_id"]
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]

    # every page asks for a sign-in first; a wrong password is refused
    page.goto(f"{url}/commands")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fcommands$"))
    expect(page.locator(".flash.unsigned")).to_have_count(0)
    _sign_in(page, "eve", "not eve's password")
    expect(page.locator(".flash.error.login")).to_contain_text("wrong user name or password")
    assert "not eve's password" not in page.content()
    expect(page.locator("header .user")).to_have_count(0)

    # an operator signs in: may not approve (the button is disabled and says why; a post by hand is refused)
    _sign_in(page, "olaf", PASSWORDS["olaf"])
    expect(page).to_have_url(f"{url}/commands")
    expect(page.locator("header .user")).to_contain_text("Signed in as olaf")
    row = page.locator(f'tr[data-command-id="{cid}"]')
    expect(row.locator("button.approve")).to_be_disabled(timeout=WAIT_S * 1000)
    expect(row).to_contain_text("olaf (operator) may not approve commands: that needs the engineer role")
    page.evaluate("""([cid]) => { const b = document.querySelector(
        'tr[data-command-id="' + cid + '"] button.approve'); b.disabled = false; b.click(); }""", [cid])
    expect(page.locator(".flash.error")).to_contain_text(
        "refused: olaf (operator) may not approve commands: that needs the engineer role")
    page.screenshot(path=str(auth_plant["shots"] / "commands-operator.png"), full_page=True)
    page.locator("button.logout").click()
    expect(page).to_have_url(re.compile(r"/login"))
    assert page.goto(f"{url}/commands") is not None and "/login" in page.url

    # the engineer signs in and approves, with a comment
    _sign_in(page, "eve", PASSWORDS["eve"])
    expect(page).to_have_url(f"{url}/commands")
    row = page.locator(f'tr[data-command-id="{cid}"]')
    expect(row).to_contain_text("within the envelope", timeout=WAIT_S * 1000)
    page.screenshot(path=str(auth_plant["shots"] / "commands-signed-in.png"), full_page=True)
    row.locator("input[name=note]").fill("checked on the floor")
    row.locator("button.approve").click()
    expect(page.locator(".flash.ok")).to_contain_text("eve: approve speed = 1200.0 on press-1")

    # the flow accepts it as eve's: the command is emitted, by eve
    emitted = out.wait_for("the approved command emitted", lambda: [
        c for c in out.records["command"] if c["command_id"] == cid and c["status"] == "emitted"],
        auth_plant["flow"], auth_plant["flow_log"], WAIT_S)[0]
    assert emitted["by"] == "eve" and emitted["value"] == 1200.0
    # on the feedback topic: one message, signed by the console on eve's behalf (only the operator's refused
    # attempt never left the console)
    (msg,) = [orjson.loads(m.value()) for m in read_topic(brokers, feedback_topic)]
    assert (msg["type"], msg["command_id"], msg["by"], msg["note"]) == ("approve", cid, "eve", "checked on the floor")
    assert (msg["auth"]["principal"], msg["auth"]["on_behalf_of"], msg["auth"]["alg"]) == ("console", "eve", "ed25519")
    assert not [d for d in out.records["deadletter"] if d["source"]["topic"] == feedback_topic]

    # the audit trail attributes the approval to eve, and its chains verify
    approved = out.wait_for("the approval in the audit trail", lambda: [
        e for e in out.records["audit"] if e["what"] == "command.approved" and e["details"].get("command_id") == cid],
        auth_plant["flow"], auth_plant["flow_log"], WAIT_S)[0]
    assert approved["principal"] == "eve", approved
    ok = subprocess.run(cli("audit", "verify", "--site", str(auth_plant["site"]), "--brokers", brokers,
                            "--broker-wait", "5"), capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "audit trail verified" in ok.stdout
    # the console's log names who signed in and what was refused, never a password
    log = auth_plant["console_log"].read_text()
    assert "eve signed in" in log and "olaf" in log
    assert not any(p in log for p in PASSWORDS.values())
    page.close()
