"""OpenLineage run events (issue 19 item 4) for every flow run and every model training, with the
``openlineage-python`` client: START when it starts, COMPLETE or FAIL when it ends, its input and output
datasets, and a run facet ``aiotstream`` with the site, flow, config hash, code version and model versions.

Where events go is ``[lineage]`` in the site config (``transport = "file" | "http" | "kafka"``), or
``--lineage-file FILE`` on ``run``, ``replay`` and ``train`` (JSONL, one event a line; it wins over the
config). Nothing is downloaded: the client sends to the configured place only. An event that cannot be sent
is a warning in the log, never the end of the run.

Dataset naming follows OpenLineage's conventions: Kafka topics in namespace ``kafka://<bootstrap host:port>``,
files (JSONL outputs, Parquet lake directories, replayed files) in namespace ``file`` by absolute path, MQTT
subscriptions in ``mqtt://<host>:<port>``, OPC UA nodes in the endpoint's namespace.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attr

log = logging.getLogger(__name__)

FACET_SCHEMA = "urn:aiotstream:openlineage:AiotstreamRunFacet:1"
"""The ``_schemaURL`` of the ``aiotstream`` run facet (documented in docs/security.md#openlineage)."""


HTTP_TIMEOUT_S = 5.0
HTTP_RETRY = {"total": 2, "read": 2, "connect": 2, "backoff_factor": 0.3,
              "status_forcelist": [500, 502, 503, 504], "allowed_methods": ["HEAD", "POST"]}
"""The HTTP transport's timeout and retries per event (the client's default, 5 retries, held a flow ~9 s
when the server was down)."""


@dataclass(frozen=True, slots=True)
class Dataset:
    namespace: str
    name: str


def kafka_datasets(brokers: str, topics: Iterable[str]) -> list[Dataset]:
    """Topics as OpenLineage datasets (namespace: the first bootstrap server).

    >>> kafka_datasets("h1:9092,h2:9092", ["s.alerts"])
    [Dataset(namespace='kafka://h1:9092', name='s.alerts')]
    """
    ns = "kafka://" + brokers.split(",")[0].strip()
    return [Dataset(ns, t) for t in topics]


def file_datasets(paths: Iterable[str | Path]) -> list[Dataset]:
    return [Dataset("file", str(Path(p).resolve())) for p in paths]


def model_versions(config: Any) -> list[dict[str, Any]]:
    """The models a run starts with: the configured one, and for ONNX sites the canary and shadow."""
    m = config.model
    out: list[dict[str, Any]] = [{"role": "champion", "name": m.name, "version": str(m.version),
                                  "kind": m.kind}]
    o = m.onnx
    if o is not None:
        for role in ("canary", "shadow"):
            ref = getattr(o, role, None)
            if ref:
                out.append({"role": role, "ref": str(ref), "kind": "onnx"})
    return out


@dataclass
class LineageRun:
    """One OpenLineage run: :meth:`start` sends START, :meth:`finish` COMPLETE or FAIL (once)."""

    client: Any
    namespace: str
    job: str
    inputs: list[Dataset]
    outputs: list[Dataset]
    facet: dict[str, Any]
    job_kind: str = "STREAMING"
    run_id: str = field(default="")
    done: bool = False

    def _event(self, state: str, error: str | None = None) -> Any:
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import error_message_run, job_type_job
        from openlineage.client.generated.base import RunFacet
        from openlineage.client.uuid import generate_new_uuid

        from aiotstream.lineage import iso_ns

        if not self.run_id:
            self.run_id = str(generate_new_uuid())

        @attr.define
        class AiotstreamRunFacet(RunFacet):  # a custom facet: site, flow, config hash, code and models
            site: str
            flow: str
            config_hash: str
            code_version: str
            models: list[dict[str, Any]]

            @staticmethod
            def _get_schema() -> str:
                return FACET_SCHEMA

        run_facets: dict[str, Any] = {"aiotstream": AiotstreamRunFacet(**self.facet)}
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=error[:2000], programmingLanguage="python")
        job_facets = {"jobType": job_type_job.JobTypeJobFacet(processingType=self.job_kind,
                                                              integration="AIOTSTREAM", jobType="JOB")}
        import time

        return RunEvent(
            eventType=getattr(RunState, state),
            eventTime=iso_ns(time.time_ns()),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=self.namespace, name=self.job, facets=job_facets),
            producer=_producer(),
            inputs=[InputDataset(namespace=d.namespace, name=d.name) for d in self.inputs],
            outputs=[OutputDataset(namespace=d.namespace, name=d.name) for d in self.outputs],
        )

    def _emit(self, state: str, error: str | None = None) -> None:
        try:
            self.client.emit(self._event(state, error))
        except Exception as exc:  # noqa: BLE001  (a lineage sink that is down must not stop the flow: say so)
            log.warning("OpenLineage %s event for %s could not be sent: %s", state, self.job, exc)

    def start(self) -> LineageRun:
        self._emit("START")
        return self

    def finish(self, error: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        self._emit("FAIL" if error is not None else "COMPLETE", error)


def _producer() -> str:
    from aiotstream import code_version

    return f"urn:aiotstream:{code_version()}"


def make_client(config: Any, lineage_file: str | None = None, brokers: str | None = None) -> Any:
    """An OpenLineage client for the site's ``[lineage]`` (or ``--lineage-file``); None when they are off."""
    lin = config.lineage
    transport_kind = "file" if lineage_file else lin.transport
    if transport_kind == "none":
        return None
    from openlineage.client import OpenLineageClient

    if transport_kind == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        path = lineage_file or lin.file
        transport: Any = FileTransport(FileConfig(log_file_path=str(path), append=True))
    elif transport_kind == "http":
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        # a server that is down costs a flow a few seconds at start and stop, not minutes: 2 retries
        transport = HttpTransport(HttpConfig(url=lin.url, timeout=HTTP_TIMEOUT_S, retry=HTTP_RETRY))
    else:
        from openlineage.client.transport.kafka import KafkaConfig, KafkaTransport

        from aiotstream.io.kafka_client import client_config_from_env

        servers = brokers or ",".join(config.inputs.brokers)
        kafka = {"bootstrap.servers": servers, **client_config_from_env()}
        transport = KafkaTransport(KafkaConfig(config=kafka, topic=lin.topic, flush=True))
    return OpenLineageClient(transport=transport)


def flow_run(config: Any, client: Any, inputs: list[Dataset], outputs: list[Dataset], *,
             job: str | None = None, job_kind: str = "STREAMING") -> LineageRun | None:
    """The lineage run of a flow (or training) of ``config``; None when ``client`` is None."""
    if client is None:
        return None
    from aiotstream import code_version

    facet = {"site": config.site.id, "flow": config.site.flow, "config_hash": config.config_hash,
             "code_version": code_version(), "models": model_versions(config)}
    return LineageRun(client, config.lineage.namespace, job or f"{config.site.flow}.{config.site.id}", inputs,
                      outputs, facet, job_kind)
