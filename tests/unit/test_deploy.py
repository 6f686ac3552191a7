"""deploy/: the Kubernetes manifests validate against the API schemas, and agree with each other and the code."""
from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from aiotstream.cli import build_parser
from aiotstream.config import SiteConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.30"


def documents() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_kubernetes(doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises ValidationError with the path


def by_kind() -> dict[str, dict]:
    return {d["kind"]: d for d in documents()}


def test_site_config_in_the_configmap_loads() -> None:
    text = by_kind()["ConfigMap"]["data"]["site.toml"]
    import tomllib

    cfg = SiteConfig.from_dict(tomllib.loads(text), source="deploy/k8s/configmap-site.yaml")
    assert cfg.all_assets()


def test_statefulset_is_a_consistent_bytewax_cluster() -> None:
    docs = by_kind()
    sts, svc = docs["StatefulSet"], docs["Service"]
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["REPLICAS"]) == sts["spec"]["replicas"], "REPLICAS must equal spec.replicas"
    assert svc["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == svc["metadata"]["name"]
    script = container["args"][0]
    # the addresses the script builds resolve through the headless service on the cluster port
    port = svc["spec"]["ports"][0]["port"]
    assert f"aiotstream-$i.{svc['metadata']['name']}.{sts['metadata']['namespace']}.svc.cluster.local:{port}" in script
    # one recovery volume per process, mounted where --recovery points
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"--recovery {mounts[claim['metadata']['name']]}" in script
    # secrets come from the Secret, the site from the ConfigMap
    assert container["envFrom"][0]["secretRef"]["name"] == docs["Secret"]["metadata"]["name"]
    site_vol = next(v for v in pod["volumes"] if v["name"] == "site")
    assert site_vol["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert f"--site {mounts['site']}/site.toml" in script


def test_statefulset_command_parses_with_the_real_cli() -> None:
    script = by_kind()["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    cmd = re.search(r"exec aiotstream (.*?)\n\s*(?!-)", script.replace("\\\n", " "), re.DOTALL)
    assert cmd, script
    argv = cmd.group(1).replace('"', "").replace("$WORKERS", "2").replace("$ordinal", "1")
    argv = argv.replace("$addresses", "a:1;b:2").replace("$((REPLICAS * WORKERS))", "4").split()
    args = build_parser().parse_args(argv)
    assert (args.command, args.workers, args.process_id, args.recovery_partitions) == ("run", 2, 1, 4)


def test_secret_variables_map_to_librdkafka_settings() -> None:
    from aiotstream.io.kafka import client_config_from_env

    secret = by_kind()["Secret"]["stringData"]
    cfg = client_config_from_env(secret)
    assert cfg == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                   "sasl.username": "change-me", "sasl.password": "change-me"}


def test_probes_and_scraping_use_the_metrics_server_the_command_starts() -> None:
    docs = by_kind()
    sts, svc = docs["StatefulSet"], docs["Service"]
    template = sts["spec"]["template"]
    (container,) = template["spec"]["containers"]
    script = container["args"][0].replace("\\\n", " ")
    m = re.search(r"--metrics-port (\d+) --metrics-host (\S+)", script)
    assert m and m.group(2) == "0.0.0.0", script  # reachable by the kubelet and Prometheus, not loopback only
    port = int(m.group(1))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    notes = template["metadata"]["annotations"]
    assert (notes["prometheus.io/scrape"], int(notes["prometheus.io/port"]), notes["prometheus.io/path"]) == \
        ("true", port, "/metrics")
    assert svc["spec"]["publishNotReadyAddresses"] is True  # unready pods keep the DNS names the cluster needs
    assert {"name": "metrics", "port": port, "targetPort": "metrics"} in svc["spec"]["ports"]
    args = build_parser().parse_args(["run", "--site", "s.toml", "--metrics-port", str(port), "--metrics-host",
                                      m.group(2)])
    assert (args.metrics_port, args.metrics_host) == (port, "0.0.0.0")
