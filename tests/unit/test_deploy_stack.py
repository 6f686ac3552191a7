"""deploy/compose.yaml, the local stack: valid against the Compose Specification schema (vendored in tests/schemas,
so nothing downloads), every port on loopback, every aiotstream command parsed by the CLI's own parser, and the
Prometheus and Grafana files agreeing with the services and with the metrics the flow exports (no docker runs
here)."""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser  # a PromQL parser (Rust, Prometheus 2.45 grammar), in the dev extra
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aiotstream.cli import build_parser
from aiotstream.config import SiteConfig

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMA = ROOT / "tests" / "schemas" / "compose-spec.json"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "aiotstream.json"

# the issue's panels: one metric each that the dashboard must query
PANELS = {
    "inputs by source": "aiotstream_inputs_total",
    "dead letters by reason": "aiotstream_deadletters_total",
    "outputs by kind": "aiotstream_outputs_total",
    "consumer lag": "bytewax_kafka_consumer_lag",
    "open alerts by severity": "aiotstream_open_alerts",
    "pending commands": "aiotstream_pending_commands",
    "window close latency": "aiotstream_window_close_latency_seconds",
    "model inference latency": "aiotstream_inference_latency_seconds",
    "sensor to topic": "aiotstream_output_latency_seconds",
    "snapshot age": "aiotstream_recovery_write_age_seconds",
}


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def product_services() -> list[str]:
    """The services that run the image of deploy/Dockerfile (its entrypoint is `aiotstream`)."""
    return sorted(n for n, s in services().items() if s.get("build", {}).get("dockerfile") == "deploy/Dockerfile")


def mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """container path -> host path (relative to deploy/) of a service's bind mounts."""
    out = {}
    for v in svc.get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith("."):
            out[dst] = (DEPLOY / src).resolve()
    return out


def test_the_vendored_schema_is_the_one_its_readme_names() -> None:
    readme = (SCHEMA.parent / "README.md").read_text()
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert digest in readme, "tests/schemas/compose-spec.json changed: update its source and checksum in README.md"


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


def test_the_schema_check_catches_a_misspelt_key_and_a_bad_port() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    bad = compose()
    bad["services"]["flow"]["helthcheck"] = bad["services"]["flow"].pop("healthcheck")
    bad["services"]["kafka"]["ports"] = [{"target": 9094, "host": "127.0.0.1"}]  # host_ip, not host
    assert len(list(validator.iter_errors(bad))) >= 2


def test_the_stack_has_every_part_of_the_issue_and_keeps_the_mqtt_path() -> None:
    svc = services()
    assert {"kafka", "simulator", "flow", "console", "prometheus", "grafana", "mosquitto", "flow-mqtt"} <= set(svc)
    # every image pinned to a version: `up` next month runs what the tests saw
    for name, s in svc.items():
        if "image" in s and "build" not in s:
            repo, _, tag = s["image"].rpartition(":")
            assert repo and tag and tag != "latest" and "/" not in tag, f"{name}: {s['image']} is not pinned"
    # the products' services run the image the Dockerfile builds
    assert set(product_services()) == {"simulator", "flow", "console", "flow-mqtt"}


def published(svc: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port, short or long syntax."""
    out = []
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            out.append((p.get("host_ip", ""), int(p.get("published", 0)), int(p["target"])))
        else:
            parts = str(p).split(":")
            host_ip = parts[0] if len(parts) == 3 else ""
            out.append((host_ip, int(parts[-2]) if len(parts) > 1 else 0, int(parts[-1])))
    return out


def test_every_published_port_binds_the_loopback_only() -> None:
    seen = {}
    for name, svc in services().items():
        assert svc.get("network_mode") != "host", name
        for host_ip, host_port, _ in published(svc):
            assert host_ip == "127.0.0.1", f"{name} publishes {host_port} beyond loopback"
            assert host_port not in seen, f"{name} and {seen.get(host_port)} both publish {host_port}"
            seen[host_port] = name
    assert published({"ports": ["9090:9090"]}) == [("", 9090, 9090)]  # what the check above refuses


def parse(argv: list[str]) -> Any:
    """`aiotstream ARGV` through the CLI's own parser; a usage error fails the test with argparse's message."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the reason to stderr
        pytest.fail(f"aiotstream {' '.join(argv)}: not accepted by the CLI (exit {exc.code})")


def cli_commands() -> set[str]:
    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


@pytest.mark.parametrize("name", product_services())
def test_every_aiotstream_command_parses_with_the_cli_and_uses_the_mounted_site(name: str) -> None:
    svc = services()[name]
    argv = [str(a) for a in svc["command"]]
    if argv[0] not in cli_commands():
        assert argv[0] == "console", f"{name}: `aiotstream {argv[0]}` is not a command"
        pytest.skip("`aiotstream console` (issue 18 item 4) is not in this branch's CLI yet: its flags "
                    "--site --brokers --host --port are not checked")
    args = parse(argv)
    assert args.command == argv[0]
    site = mounts(svc)[args.site]
    cfg = SiteConfig.from_dict(tomllib.loads(site.read_text()), source=str(site))
    if cfg.inputs.kind == "kafka" or argv[0] in ("simulate", "console"):
        # Kafka clients in the stack use the broker's listener for the compose network
        kafka_env = services()["kafka"]["environment"]
        assert f"INTERNAL://{args.brokers}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for _, _, target in published(svc):
        # a server inside the container listens on every interface, the host side is loopback (checked above)
        assert target in (getattr(args, "metrics_port", None), getattr(args, "port", None)), (name, target)
        assert "0.0.0.0" in (getattr(args, "metrics_host", None), getattr(args, "host", None))


def test_the_console_command_is_the_one_agreed_for_issue_18() -> None:
    # checked by the CLI above once `aiotstream console` exists; until then, at least the agreed shape
    argv = [str(a) for a in services()["console"]["command"]]
    assert argv == ["console", "--site", "/etc/aiotstream/site.toml", "--brokers", "kafka:9092", "--host", "0.0.0.0",
                    "--port", "8080"]
    assert "127.0.0.1:8080:8080" in services()["console"]["ports"]
    assert re.search(r"^EXPOSE .*\b8080\b", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)


def test_the_image_gets_every_file_the_package_reads() -> None:
    """The image installs the wheel of the package (deploy/Dockerfile), which holds the .py files and only the
    other files that pyproject's package-data names: every data file under aiotstream/ (the output schemas, the
    console's templates and static files) must match one of its globs, or the container lacks it."""
    import fnmatch

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "COPY aiotstream aiotstream" in dockerfile and re.search(r"pip wheel .* \.$", dockerfile, re.MULTILINE)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["aiotstream"]
    pkg = ROOT / "aiotstream"
    data = [p.relative_to(pkg).as_posix() for p in pkg.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc", ".so", ".c", ".pyi") and "__pycache__" not in p.parts
            and not p.name.startswith(".")]
    assert "schemas/outputs.schema.json" in data  # the scan sees package data
    missing = [d for d in data if not any(fnmatch.fnmatch(d, g) for g in globs)]
    assert missing == [], "add these to [tool.setuptools.package-data] so the wheel and the image carry them"


def test_the_simulator_feeds_the_topics_the_flow_reads() -> None:
    svc = services()
    sim, flow = parse([str(a) for a in svc["simulator"]["command"]]), parse([str(a) for a in svc["flow"]["command"]])
    assert mounts(svc["simulator"])[sim.site] == mounts(svc["flow"])[flow.site]
    assert sim.brokers == flow.brokers
    assert flow.recovery and any(v.endswith(":/var/lib/aiotstream") for v in svc["flow"]["volumes"])
    assert svc["simulator"]["restart"] == "no"  # one plant run: a restart would repeat the same event times
    for name in ("simulator", "flow", "console"):
        assert svc[name]["depends_on"]["kafka"]["condition"] == "service_healthy", name


def test_prometheus_scrapes_each_flow_on_its_metrics_port() -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    svc = services()
    assert mounts(svc["prometheus"])["/etc/prometheus/prometheus.yml"] == DEPLOY / "prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in svc["prometheus"]["command"]
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in prom["scrape_configs"])
    flows = {n for n in product_services() if svc[n]["command"][0] == "run"}
    expected = set()
    for name in flows:
        args = parse([str(a) for a in svc[name]["command"]])
        expected.add(f"{name}:{args.metrics_port}")
        test = svc[name]["healthcheck"]["test"]
        assert f"http://127.0.0.1:{args.metrics_port}/readyz" in test[-1], name
        compile(test[-1], "healthcheck", "exec")
    assert targets == expected
    # a target label must not shadow a label the flow's own metrics carry (aiotstream_build_info{flow,...})
    labels = {k for job in prom["scrape_configs"] for sc in job["static_configs"] for k in sc.get("labels", {})}
    assert not labels & {"flow", "site", "source", "kind", "reason", "process", "version"}


def test_grafana_is_provisioned_with_the_stacks_prometheus_and_the_dashboard() -> None:
    svc = services()["grafana"]
    m = mounts(svc)
    prov, dashboards = m["/etc/grafana/provisioning"], m["/var/lib/grafana/dashboards"]
    (ds,) = yaml.safe_load((prov / "datasources" / "prometheus.yaml").read_text())["datasources"]
    prom_port = published(services()["prometheus"])[0][2]
    assert ds["type"] == "prometheus" and ds["url"] == f"http://prometheus:{prom_port}"
    (provider,) = yaml.safe_load((prov / "dashboards" / "aiotstream.yaml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    home = svc["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards / Path(home).relative_to("/var/lib/grafana/dashboards")) == DASHBOARD
    dash = json.loads(DASHBOARD.read_text())
    # one datasource variable, the stack's Prometheus by default: the JSON imports into any Grafana
    (var,) = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert var["query"] == "prometheus" and var["current"]["value"] == ds["uid"]
    for panel in dash["panels"]:
        for target in [panel, *panel.get("targets", [])]:
            if "datasource" in target:
                assert target["datasource"] == {"type": "prometheus", "uid": f"${{{var['name']}}}"}, panel["title"]
    assert "${" + var["name"] + "}" in json.dumps([v.get("datasource") for v in dash["templating"]["list"]])


def exported_metrics(tmp_path: Path) -> dict[str, set[str] | None]:
    """Every family and sample name the flow's metrics server serves -> the label names its samples carry (None:
    served without samples, labels unknown), scraped from a real server whose run has counted something in each
    group (and with recovery on, so its age gauge is there)."""
    import bytewax.connectors.kafka  # noqa: F401  (registers Bytewax's consumer lag gauge, as `run` does)

    from aiotstream.io.metrics import MetricsServer
    from aiotstream.runstats import RunStats

    stats = RunStats()
    for group in ("inputs", "deadletters", "outputs", "losses", "dropped"):
        stats.add(group, "x", 1)
    stats.set("gauges", "active_suppressions", 1)
    stats.watermark("asset-000", 1_767_225_600_000_000_000)  # a closed window: the watermark lag appears
    (tmp_path / "part-0.sqlite3").write_bytes(b"")
    server = MetricsServer(port=0, stats=stats, info={"site": "s"}, ready=lambda: (True, "ready"),
                           sources=lambda: {"Kafka k:9092": True}, recovery=tmp_path)
    names: dict[str, set[str] | None] = {}
    for fam in text_string_to_metric_families(generate_latest(server.registry).decode()):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(fam.type, [])
        family = [fam.name] + [fam.name + x for x in suffixes]
        for name in family:
            names.setdefault(name, None)
        for sample in fam.samples:
            for name in {sample.name, *family}:
                names[name] = (names.get(name) or set()) | set(sample.labels)
    return names


def promql(expr: str) -> promql_parser.Expr:
    """A dashboard query as Prometheus would get it from Grafana: $__rate_interval and the like as a duration,
    template variables ($instance) as a regex that matches everything; then parsed (ValueError if not PromQL)."""
    expr = re.sub(r"\$__\w+", "1m", expr)
    return promql_parser.parse(re.sub(r"\$\w+", ".*", expr))


def selectors(expr: promql_parser.Expr) -> list[str]:
    """The metric names an expression selects."""
    names: list[str] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.append(node.name)

    promql_parser.walk(expr, visit)
    return names


def dashboard_metrics() -> dict[str, set[str]]:
    """metric name -> titles of the panels whose queries select it (each query parsed as PromQL)."""
    out: dict[str, set[str]] = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            for name in selectors(promql(target["expr"])):
                out.setdefault(name, set()).add(panel["title"])
    return out


def test_the_promql_check_reads_names_and_refuses_bad_queries() -> None:
    assert selectors(promql('histogram_quantile(0.5, sum by (le) (rate(a_bucket{instance=~"$instance"}'
                            '[$__rate_interval]))) / on() b')) == ["a_bucket", "b"]
    with pytest.raises(ValueError):
        promql("sum by (source (rate(aiotstream_inputs_total[1m]))")


def base(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)


def test_every_metric_the_dashboard_queries_is_exported(tmp_path: Path) -> None:
    exported = set(exported_metrics(tmp_path))
    assert {"aiotstream_inputs_total", "aiotstream_source_up", "bytewax_kafka_consumer_lag",
            "aiotstream_recovery_write_age_seconds"} <= exported  # the scrape above is complete
    unknown = {n: sorted(t) for n, t in dashboard_metrics().items() if n not in exported}
    assert unknown == {}, "the dashboard queries metrics nobody exports (typo, or a rename in io/metrics.py)"


def test_the_dashboard_has_a_panel_for_each_metric_the_issue_names() -> None:
    used = {base(n) for n in dashboard_metrics()}
    missing = {panel: metric for panel, metric in PANELS.items() if metric not in used}
    assert missing == {}
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] == "aiotstream"
    for panel in dash["panels"]:  # quantiles over histogram buckets, summed keeping `le`
        for target in panel.get("targets", []):
            expr = target["expr"]
            if "histogram_quantile" in expr:
                assert all(n.endswith("_bucket") for n in selectors(promql(expr))), (panel["title"], expr)
                assert re.search(r"by \(le\b", expr), (panel["title"], expr)


def listeners(value: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in value.split(","):
        name, _, hostport = item.partition("://")
        host, _, port = hostport.rpartition(":")
        out[name] = (host, int(port))
    return out


def test_kafka_listens_for_the_stack_and_for_the_host_and_is_its_own_controller() -> None:
    kafka = services()["kafka"]
    env = kafka["environment"]
    bound, advertised = listeners(env["KAFKA_LISTENERS"]), listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(bound) == set(protocols) and controller in bound and controller not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for name, (_, port) in advertised.items():
        assert bound[name][1] == port, name  # advertised where it listens
    # the stack's clients: the service name on the internal listener (what every --brokers says)
    assert advertised["INTERNAL"] == ("kafka", bound["INTERNAL"][1])
    assert "--bootstrap-server kafka:" + str(bound["INTERNAL"][1]) in kafka["healthcheck"]["test"][-1]
    # host clients: the loopback port published 1:1, advertised as such
    host_ip, host_port, target = next(p for p in published(kafka) if p[2] == bound["HOST"][1])
    assert advertised["HOST"] == (host_ip, host_port) == ("127.0.0.1", target)
    # a one-node KRaft quorum of itself on the controller listener
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:{bound[controller][1]}"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])  # 16 bytes, base64url without padding
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[key] == "1", key  # one node
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])  # the data survives `up` again
    # the flow's largest input fits a Kafka message (the site's max_message_bytes)
    site = tomllib.loads((ROOT / "flows" / "sites" / "plant-a.toml").read_text())
    assert int(env["KAFKA_MESSAGE_MAX_BYTES"]) >= site["inputs"]["max_message_bytes"]


def groupings(expr: promql_parser.Expr) -> list[tuple[list[str], list[str]]]:
    """(by-labels, metric names aggregated) of each `... by (labels)` aggregation in an expression; the outermost
    first."""
    out = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            assert node.modifier.type == promql_parser.AggModifierType.By, "the dashboard groups with by (...)"
            out.append((list(node.modifier.labels), selectors(node.expr)))

    promql_parser.walk(expr, visit)
    return out


def test_the_dashboard_groups_by_labels_the_metrics_carry_and_names_series_by_them(tmp_path: Path) -> None:
    exported = exported_metrics(tmp_path)
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    target_labels = {"instance", "job"} | {k for job in prom["scrape_configs"] for sc in job["static_configs"]
                                          for k in sc.get("labels", {})}
    checked = 0
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            groups = groupings(promql(target["expr"]))
            assert groups, (panel["title"], "every query aggregates: one series per label value, not per process")
            for labels, names in groups:
                for name in names:
                    carried = exported.get(name)
                    if carried is None:  # an agreed metric not exported in this branch, or one without samples
                        continue
                    assert set(labels) - {"le"} <= carried | target_labels, (panel["title"], name, labels)
                    checked += 1
            # the legend names each series by labels the result keeps
            kept = set(groups[0][0]) - {"le"}
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]))
            assert legend <= kept, (panel["title"], target["legendFormat"], kept)
    assert checked >= 5  # inputs, dead letters, outputs, source_up, ready, recovery age at least
