"""deploy/helm/aiotstream: the chart renders with Helm's own engine (helm-python-sdk: Helm's Go SDK through ctypes,
no helm binary, no cluster), every manifest validates against the Kubernetes 1.30 schemas, the defaults render the
flow of deploy/k8s, every value is documented, and the commands parse with aiotstream's CLI."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm  # helm-python-sdk, in the dev extra
import kubernetes_validate
import pytest
import yaml

from aiotstream.cli import build_parser
from aiotstream.config import SiteConfig

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "aiotstream"
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.30"


def render(values: dict[str, Any] | None = None, name: str = "aiotstream", namespace: str = "aiotstream"
           ) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values or {}, name=name, namespace=namespace)
    docs = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def one(docs: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    (doc,) = [d for d in by_kind(docs)[kind]
              if component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    return doc


VARIANTS = {
    "defaults": {},
    "everything on": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
                      "kafka": {"brokers": "k-0:9093,k-1:9093"}, "imagePullSecrets": ["regcred"],
                      "flow": {"replicas": 3, "workers": 2, "extraArgs": ["--parquet-dir", "/data/lake"],
                               "nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "iot", "operator": "Exists"}],
                               "recovery": {"storageClass": "fast"}, "podAnnotations": {"team": "ops"}},
                      "console": {"service": {"type": "LoadBalancer"}, "extraArgs": ["--refresh-s", "5"]}},
    "minimal": {"console": {"enabled": False}, "kafka": {"existingSecret": ""}, "metrics": {"podAnnotations": False}},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_manifest_is_valid_kubernetes(variant: str) -> None:
    docs = render(VARIANTS[variant], name="plant", namespace="ops")
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: checked by test_the_servicemonitor_scrapes_the_flows_metrics_port
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises with the path of the bad field
        assert doc["metadata"]["namespace"] == "ops"


def test_the_schema_check_catches_a_bad_field() -> None:
    sts = one(render(), "StatefulSet")
    sts["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["prot"] = "metrics"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSION, strict=True)


def test_the_chart_lints_clean() -> None:
    report = helm.lint(str(CHART), strict=True, kube_version=f"v{K8S_VERSION}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def k8s_docs() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(path.read_text()):
            if d:
                docs[d["kind"]] = d
    return docs


def test_the_defaults_render_the_flow_of_deploy_k8s() -> None:
    """deploy/k8s stays the plain-manifest form (kubectl apply -f); the chart is its templated twin. Labels
    differ (the chart's carry the release), everything the pods run with is the same."""
    ours, theirs = render(), k8s_docs()
    sts, ref = one(ours, "StatefulSet"), theirs["StatefulSet"]
    (c,), (rc,) = sts["spec"]["template"]["spec"]["containers"], ref["spec"]["template"]["spec"]["containers"]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert {k: v for k, v in c.items() if k != "imagePullPolicy"} == rc
    pod, rpod = sts["spec"]["template"]["spec"], ref["spec"]["template"]["spec"]
    assert {k: v for k, v in pod.items() if k != "containers"} == {k: v for k, v in rpod.items() if k != "containers"}
    for key in ("serviceName", "replicas", "podManagementPolicy", "volumeClaimTemplates"):
        assert sts["spec"][key] == ref["spec"][key], key
    notes = sts["spec"]["template"]["metadata"]["annotations"]
    assert {k: v for k, v in notes.items() if k.startswith("prometheus.io/")} == \
        ref["spec"]["template"]["metadata"]["annotations"]
    svc, rsvc = one(ours, "Service", "flow"), theirs["Service"]
    assert {k: v for k, v in svc["spec"].items() if k != "selector"} == \
        {k: v for k, v in rsvc["spec"].items() if k != "selector"}
    assert one(ours, "ConfigMap")["data"] == theirs["ConfigMap"]["data"]
    assert c["envFrom"] == [{"secretRef": {"name": theirs["Secret"]["metadata"]["name"]}}]
    assert "Secret" not in by_kind(ours)  # credentials are referenced, never rendered from values


def test_the_default_site_loads() -> None:
    text = one(render(), "ConfigMap")["data"]["site.toml"]
    assert SiteConfig.from_dict(tomllib.loads(text), source="values.yaml site.toml").all_assets()


def run_script(script: str, hostname: str, env: dict[str, str], tmp_path: Path) -> list[str]:
    """The flow container's shell script, run for real by /bin/sh with `aiotstream` on PATH printing the
    arguments it is exec'd with."""
    shim = tmp_path / "aiotstream"
    shim.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    shim.chmod(0o755)
    out = subprocess.run(["/bin/sh", "-c", script], env={"PATH": f"{tmp_path}:{os.environ['PATH']}",
                                                         "HOSTNAME": hostname, **env},
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.splitlines()


def test_the_flow_script_starts_a_consistent_cluster_that_the_cli_accepts(tmp_path: Path) -> None:
    values = VARIANTS["everything on"]
    docs = render(values, name="plant", namespace="ops")
    sts, svc = one(docs, "StatefulSet"), one(docs, "Service", "flow")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert int(env["REPLICAS"]) == sts["spec"]["replicas"] == 3 and env["WORKERS"] == "2"
    argv = run_script(c["args"][0], f"{sts['metadata']['name']}-2", env, tmp_path)
    args = build_parser().parse_args(argv)
    assert (args.command, args.workers, args.process_id, args.recovery_partitions) == ("run", 2, 2, 6)
    assert args.brokers == "k-0:9093,k-1:9093" and args.parquet_dir == "/data/lake"
    # every process's address: pod.<headless service>.<namespace>.svc.<domain>:<cluster port>
    cluster_port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "cluster")
    assert args.addresses.split(";") == [f"plant-aiotstream-{i}.{svc['metadata']['name']}.ops.svc.cluster.local:"
                                         f"{cluster_port}" for i in range(3)]
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"] and svc["spec"]["clusterIP"] == "None"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert args.recovery == mounts[sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]]
    assert args.site == f"{mounts['site']}/site.toml"
    # probes and scraping on the metrics server the command starts, reachable from outside the pod
    assert args.metrics_host == "0.0.0.0"
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"] == args.metrics_port
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    notes = sts["spec"]["template"]["metadata"]["annotations"]
    assert (notes["prometheus.io/scrape"], int(notes["prometheus.io/port"])) == ("true", args.metrics_port)
    assert notes["team"] == "ops"


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("variant", ["defaults", "everything on"])
def test_selectors_pick_the_right_pods(variant: str) -> None:
    docs = render(VARIANTS[variant])
    sts, dep = one(docs, "StatefulSet"), one(docs, "Deployment")
    flow_pod, console_pod = sts["spec"]["template"]["metadata"]["labels"], dep["spec"]["template"]["metadata"]["labels"]
    assert labels_match(sts["spec"]["selector"]["matchLabels"], flow_pod)
    assert not labels_match(sts["spec"]["selector"]["matchLabels"], console_pod)
    assert labels_match(dep["spec"]["selector"]["matchLabels"], console_pod)
    assert not labels_match(dep["spec"]["selector"]["matchLabels"], flow_pod)
    flow_svc, console_svc = one(docs, "Service", "flow"), one(docs, "Service", "console")
    assert labels_match(flow_svc["spec"]["selector"], flow_pod)
    assert not labels_match(flow_svc["spec"]["selector"], console_pod)
    assert labels_match(console_svc["spec"]["selector"], console_pod)
    assert not labels_match(console_svc["spec"]["selector"], flow_pod)
    (cc,) = dep["spec"]["template"]["spec"]["containers"]
    assert console_svc["spec"]["ports"][0]["targetPort"] in [p["name"] for p in cc["ports"]]


def test_the_servicemonitor_scrapes_the_flows_metrics_port() -> None:
    assert "ServiceMonitor" not in by_kind(render())  # off by default: not every cluster has the CRD
    docs = render(VARIANTS["everything on"])
    sm, svc = one(docs, "ServiceMonitor"), one(docs, "Service", "flow")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["metadata"]["labels"]["release"] == "prom"
    assert labels_match(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert not labels_match(sm["spec"]["selector"]["matchLabels"], one(docs, "Service", "console")["metadata"]["labels"])
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] in [p["name"] for p in svc["spec"]["ports"]] and ep["path"] == "/metrics"


def cli_commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_the_console_serves_the_site_on_its_port() -> None:
    docs = render(VARIANTS["everything on"])
    dep = one(docs, "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    argv = [str(a) for a in c["args"]]
    assert argv[:3] == ["console", "--site", "/etc/aiotstream/site.toml"]
    i = argv.index("--port")
    assert int(argv[i + 1]) == c["ports"][0]["containerPort"] and argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--brokers") + 1] == "k-0:9093,k-1:9093" and argv[-2:] == ["--refresh-s", "5"]
    sts = one(docs, "StatefulSet")
    assert dep["spec"]["template"]["spec"]["volumes"] == sts["spec"]["template"]["spec"]["volumes"]  # same site
    assert "Deployment" not in by_kind(render(VARIANTS["minimal"]))  # console.enabled false
    if "console" not in cli_commands():
        pytest.skip("`aiotstream console` (issue 18 item 4) is not in this branch's CLI yet: its flags are not "
                    "parsed")
    args = build_parser().parse_args(argv)
    assert (args.command, args.site, args.brokers, args.host, args.port) == \
        ("console", "/etc/aiotstream/site.toml", "k-0:9093,k-1:9093", "0.0.0.0", c["ports"][0]["containerPort"])


def test_every_value_is_documented() -> None:
    """Each key of values.yaml has a comment line right above it (or is a flow-style leaf of a documented key)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    block_indent = -1  # >= 0 inside a `|` block scalar whose key is indented this much
    for i, line in enumerate(lines):
        if block_indent >= 0:
            if line.strip() and not line.startswith(" " * (block_indent + 1)):
                block_indent = -1
            else:
                continue
        m = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9_]*):", line)
        if not m:
            continue
        prev = next((p for p in reversed(lines[:i]) if p.strip()), "")
        if not prev.strip().startswith("#"):
            undocumented.append(m.group(2))
        if line.rstrip().endswith("|"):
            block_indent = len(m.group(1))
    assert undocumented == []
    # and the check reads YAML the way the chart does: every top-level key it saw is a real value
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert {"image", "site", "kafka", "flow", "metrics", "probes", "console"} <= set(values)


def schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, sub in schema.get("properties", {}).items():
        out.add(prefix + key)
        if sub.get("additionalProperties") is False:
            out |= schema_paths(sub, f"{prefix}{key}.")
    return out


def value_paths(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in values.items():
        out.add(prefix + key)
        sub = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and sub.get("additionalProperties") is False:
            out |= value_paths(value, sub, f"{prefix}{key}.")
    return out


def test_values_schema_covers_every_value_and_refuses_typos() -> None:
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert value_paths(values, schema) == schema_paths(schema)
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema({})  # the defaults
        for bad in ({"flow": {"replica": 3}}, {"flow": {"replicas": "two"}}, {"kafka": {"brokers": "k 9092"}},
                    {"metrics": {"port": 70000}}, {"console": {"service": {"type": "Ingress"}}}):
            with pytest.raises(helm.HelmValuesError):
                chart.render(bad, name="aiotstream", namespace="aiotstream")


def test_network_policies_admit_only_the_flows_cluster_traffic_and_scrapes() -> None:
    """The flow's pods: cluster port from flow pods only, the metrics port; the console's: its HTTP port; the
    same flow policy as deploy/k8s; egress restricted only when rules are given; off when disabled."""
    docs = render()
    flow, console = one(docs, "NetworkPolicy", "flow"), one(docs, "NetworkPolicy", "console")
    sts, dep = one(docs, "StatefulSet"), one(docs, "Deployment")
    flow_pod, console_pod = sts["spec"]["template"]["metadata"]["labels"], dep["spec"]["template"]["metadata"]["labels"]
    assert labels_match(flow["spec"]["podSelector"]["matchLabels"], flow_pod)
    assert not labels_match(flow["spec"]["podSelector"]["matchLabels"], console_pod)
    assert labels_match(console["spec"]["podSelector"]["matchLabels"], console_pod)
    assert not labels_match(console["spec"]["podSelector"]["matchLabels"], flow_pod)
    cluster, metrics = flow["spec"]["ingress"]
    assert cluster["ports"] == [{"protocol": "TCP", "port": 2101}]
    (peer,) = cluster["from"]
    assert labels_match(peer["podSelector"]["matchLabels"], flow_pod)
    assert not labels_match(peer["podSelector"]["matchLabels"], console_pod)
    assert metrics == {"ports": [{"protocol": "TCP", "port": 9464}]}
    assert console["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    assert flow["spec"]["policyTypes"] == ["Ingress"] and "egress" not in flow["spec"]
    ref = k8s_docs()["NetworkPolicy"]
    assert ref["spec"]["policyTypes"] == flow["spec"]["policyTypes"]
    assert [r["ports"] for r in ref["spec"]["ingress"]] == [r["ports"] for r in flow["spec"]["ingress"]]
    assert ["from" in r for r in ref["spec"]["ingress"]] == ["from" in r for r in flow["spec"]["ingress"]]
    kubernetes_validate.validate(ref, K8S_VERSION, strict=True)

    dns = [{"ports": [{"protocol": "UDP", "port": 53}]}]
    prom = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    docs = render({"networkPolicy": {"egress": dns, "metricsFrom": prom}})
    flow = one(docs, "NetworkPolicy", "flow")
    assert flow["spec"]["policyTypes"] == ["Ingress", "Egress"] and flow["spec"]["egress"] == dns
    assert flow["spec"]["ingress"][1]["from"] == prom
    for doc in docs:
        if doc["kind"] == "NetworkPolicy":
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert "NetworkPolicy" not in by_kind(render({"networkPolicy": {"enabled": False}}))
