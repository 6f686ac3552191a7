"""OPC UA write-back: emitted commands written to the PLC node configured for their actuator, acknowledged on
the site's ack topic.

For every ``aiotstream.command/1`` record with status ``emitted`` whose asset and actuator have a node in
``[outputs.opcua] writes``, the writer, at the moment of writing:

1. reads the node's current value and data type;
2. checks the actuator's envelope again (:func:`write_time_check`): the value is finite, inside
   ``[min, max]``, and at most ``max_step`` away from the value the PLC holds now (the flow's own view of
   the current value may be stale); a command that fails is **not written**;
3. writes the value in the node's own data type;
4. acknowledges the command with the record devices send (``aiotstream.feedback/1``, type ``command_ack``):
   ``applied`` with the written value, ``rejected`` with ``blocked at write time: ...`` when the envelope
   check failed, ``failed`` with the server's status (a node that does not exist, a Bad status, a PLC
   that cannot be reached). The flow reads the ack like any device's: ``acked``, or ``failed`` with a
   ``command_failed`` alert. With ``[auth]`` the ack is signed as ``[outputs.opcua] ack_principal`` (a device
   principal, key in ``ack_key_file``) and its ``by`` is that principal; without, ``by`` is
   ``opcua-writer`` and the ack is unsigned, as before.

A write failure never stops the flow: it is a ``failed`` ack and a warning line. The connection is made at
the first command and again after a failure.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from aiotstream.config import ActuatorConfig, OpcUaOutput, SiteConfig
from aiotstream.errors import AiotError
from aiotstream.records import Output

log = logging.getLogger(__name__)

SendAck = Callable[[str, str, bytes], None]
"""``(topic, key, value)``: hands one ack message to the broker (and waits for it)."""

BY = "opcua-writer"


def write_time_check(act: ActuatorConfig, value: Any, current: float | None) -> str | None:
    """Why ``value`` may not be written to ``act`` now, or None.

    >>> from aiotstream.config import ActuatorConfig
    >>> a = ActuatorConfig(name="speed", min=0, max=100, max_step=10)
    >>> write_time_check(a, 55.0, 50.0) is None
    True
    >>> write_time_check(a, 120.0, 115.0)
    'max: 120 > 100'
    >>> write_time_check(a, 75.0, 50.0)
    'max_step: |75 - 50| > 10 (the value the PLC holds now)'
    >>> write_time_check(a, float("nan"), 50.0)
    'value: not a finite number'
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "value: not a finite number"
    v = float(value)
    if act.min is not None and v < act.min:
        return f"min: {v:g} < {act.min:g}"
    if act.max is not None and v > act.max:
        return f"max: {v:g} > {act.max:g}"
    if act.max_step is not None and current is not None and math.isfinite(current) \
            and abs(v - current) > act.max_step * (1 + 1e-9):
        return f"max_step: |{v:g} - {current:g}| > {act.max_step:g} (the value the PLC holds now)"
    return None


def ack_record(rec: dict[str, Any], status: str, value: float | None, note: str | None,
               by: str = BY) -> dict[str, Any]:
    """The ``command_ack`` feedback message for command record ``rec`` (what a device sends)."""
    ack: dict[str, Any] = {"schema": "aiotstream.feedback/1", "type": "command_ack", "ts": time.time_ns(),
                           "asset": rec["asset"], "command_id": rec["command_id"], "status": status, "by": by}
    if value is not None:
        ack["value"] = value
    if note:
        ack["note"] = note[:4096]
    return ack


class _Plc:
    """The asyncua client on an event loop of its own thread (the sink's calls are synchronous)."""

    def __init__(self, cfg: OpcUaOutput):
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="opcua-writer", daemon=True)
        self.thread.start()
        self.client: Any = None

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10 * self.cfg.timeout_s)

    def write_now(self, node_id: str, act: ActuatorConfig,
                  value: Any) -> tuple[str, float | None, str | None]:
        """:meth:`write` from the sink's thread, bounded: a PLC that stops answering mid-write is a failed
        ack (and a new connection next time), not a flow that hangs."""
        fut = asyncio.run_coroutine_threadsafe(self.write(node_id, act, value), self.loop)
        limit = 10 * self.cfg.timeout_s
        try:
            return fut.result(timeout=limit)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            asyncio.run_coroutine_threadsafe(self._drop(), self.loop)
            return "failed", None, f"OPC UA {self.cfg.endpoint}: no answer within {limit:g} s"

    async def _client(self) -> Any:
        if self.client is None:
            from aiotstream.io.opcua import make_client

            client = await make_client(self.cfg, "outputs.opcua")
            await asyncio.wait_for(client.connect(), timeout=3 * self.cfg.timeout_s)
            self.client = client
        return self.client

    async def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), timeout=self.cfg.timeout_s)
            except Exception as exc:  # noqa: BLE001 - the connection is gone either way
                log.debug("OPC UA writer: disconnect from %s: %s", self.cfg.endpoint, _text(exc))

    async def write(self, node_id: str, act: ActuatorConfig,
                    value: Any) -> tuple[str, float | None, str | None]:
        """(status, written value, note) for one command."""
        from asyncua import ua

        try:
            client = await self._client()
        except Exception as exc:  # noqa: BLE001 - any failure to connect is a failed write, not a crash
            await self._drop()
            return "failed", None, f"OPC UA {self.cfg.endpoint} not reachable: {_text(exc)}"
        try:
            node = client.get_node(node_id)
            current = await node.read_value()
            vtype = await node.read_data_type_as_variant_type()
        except (ua.UaStatusCodeError, ValueError) as exc:
            return "failed", None, f"node {node_id}: {_text(exc)}"
        except Exception as exc:  # noqa: BLE001 - the connection broke: reconnect at the next command
            await self._drop()
            return "failed", None, f"OPC UA {self.cfg.endpoint}: {_text(exc)}"
        cur = float(current) if isinstance(current, (int, float)) and not isinstance(current, bool) else None
        blocked = write_time_check(act, value, cur)
        if blocked is not None:
            return "rejected", None, f"blocked at write time: {blocked}"
        out: Any = float(value)
        if vtype not in (ua.VariantType.Double, ua.VariantType.Float):
            if vtype == ua.VariantType.Boolean:
                out = bool(out)
            elif not float(out).is_integer():
                return "rejected", None, (f"blocked at write time: node {node_id} holds {vtype.name}, "
                                          f"{value!r} is not a whole number")
            else:
                out = int(out)
        try:
            await node.write_value(ua.DataValue(ua.Variant(out, vtype)))
        except (ua.UaStatusCodeError, ValueError, OverflowError) as exc:
            return "failed", None, f"node {node_id}: {_text(exc)}"
        except Exception as exc:  # noqa: BLE001
            await self._drop()
            return "failed", None, f"OPC UA {self.cfg.endpoint}: {_text(exc)}"
        return "applied", float(out), None

    def close(self) -> None:
        try:
            self.run(self._drop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def _text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


Signer = Callable[[dict[str, Any]], dict[str, Any]]
"""Signs an ack (``[auth]``): the message with its ``auth`` object."""


def ack_signer(config: SiteConfig) -> tuple[str, Signer | None]:
    """Who the writer's acks are by, and how they are signed: without ``[auth]``, ``opcua-writer`` and
    unsigned (as before); with it, ``[outputs.opcua] ack_principal``, signed with ``ack_key_file`` (Ed25519
    private key, or the HMAC secret, as the principal's key in ``[auth]`` says). The key is read now, so a
    missing or wrong key stops the flow at start, not at the first command."""
    from aiotstream.auth import load_signing_key, sign

    cfg, auth = config.outputs.opcua, config.auth
    if cfg is None or auth is None or cfg.ack_principal is None or cfg.ack_key_file is None:
        return BY, None
    p = auth.principal(cfg.ack_principal)
    alg = "ed25519" if p is not None and p.public_key_file is not None else "hmac-sha256"
    key = load_signing_key(cfg.ack_key_file, alg, "outputs.opcua.ack_key_file", cfg.ack_key_password_file)
    pid = cfg.ack_principal

    def signer(ack: dict[str, Any]) -> dict[str, Any]:
        return sign(ack, pid, key, alg=alg)

    return pid, signer


class _WriterPartition(StatelessSinkPartition[Output]):
    def __init__(self, cfg: OpcUaOutput, actuators: dict[str, ActuatorConfig], ack_topic: str,
                 send_ack: SendAck, close_ack: Callable[[], None] | None = None,
                 signer: tuple[str, Signer | None] = (BY, None)):
        self.by, self.sign = signer
        self.cfg = cfg
        self.nodes = {(w.asset, w.actuator): w.node_id for w in cfg.writes}
        self.actuators = actuators
        self.ack_topic = ack_topic
        self.send_ack = send_ack
        self.close_ack = close_ack
        self.plc = _Plc(cfg)

    def write_batch(self, items: list[Output]) -> None:
        for out in items:
            rec = out.record
            if out.kind != "command" or rec.get("status") != "emitted":
                continue
            node_id = self.nodes.get((rec.get("asset"), rec.get("actuator")))
            if node_id is None:
                continue
            status, value, note = self.plc.write_now(node_id, self.actuators[rec["actuator"]],
                                                     rec.get("value"))
            if status != "applied":
                log.warning("OPC UA write of command %s (%s/%s = %r) to %s: %s: %s", rec.get("command_id"),
                            rec.get("asset"), rec.get("actuator"), rec.get("value"), node_id, status, note)
            ack = ack_record(rec, status, value, note, self.by)
            if self.sign is not None:
                ack = self.sign(ack)
            self.send_ack(self.ack_topic, rec["asset"], orjson.dumps(ack))

    def close(self) -> None:
        try:
            self.plc.close()
        finally:
            if self.close_ack is not None:
                self.close_ack()


class OpcUaCommandSink(DynamicSink[Output]):
    """Writes emitted commands to PLC nodes (``[outputs.opcua]``), acks on the site's ack topic.

    ``send_ack``: how an ack reaches the broker; default a Kafka producer on the site's brokers (with
    ``[inputs.kafka]``), each ack awaited."""

    def __init__(self, config: SiteConfig, brokers: str | None = None, send_ack: SendAck | None = None):
        cfg = config.outputs.opcua
        if cfg is None:
            raise AiotError("the site config has no [outputs.opcua] table")
        self.cfg = cfg
        actuators = {a.name: a for a in config.control.actuators}
        assets = {a.id for a in config.assets}
        for w in cfg.writes:
            if w.actuator not in actuators:
                raise AiotError(f"[outputs.opcua] writes: actuator {w.actuator!r} is not in "
                                "[[control.actuators]]")
            if w.asset not in assets:
                raise AiotError(f"[outputs.opcua] writes: asset {w.asset!r} is not in the site's assets")
        self.actuators = actuators
        self.signer = ack_signer(config)  # [auth]: the acks are signed as the writer's device principal
        feedback = list(config.inputs.feedback_topics)
        self.ack_topic = cfg.ack_topic or next((t for t in feedback if t.endswith(".acks")),
                                               feedback[-1] if feedback else f"{config.site.id}.acks")
        self.brokers = brokers or ",".join(config.inputs.brokers)
        self.security = config.inputs.kafka
        self.send_ack = send_ack
        from aiotstream.io.opcua import make_client
        from aiotstream.io.outage import route_library_logs

        route_library_logs("asyncua", f"{__name__}.asyncua")  # its lines at DEBUG; ours say what went wrong
        asyncio.run(make_client(cfg, "outputs.opcua"))  # unreadable certificates, a missing secret: now
        warning = cfg.security_warning()
        if warning:
            log.warning("%s", warning.replace("values", "commands"))

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WriterPartition:
        if self.send_ack is not None:
            return _WriterPartition(self.cfg, self.actuators, self.ack_topic, self.send_ack,
                                    signer=self.signer)
        from aiotstream.io.kafka import make_producer

        producer = make_producer(self.brokers, self.security)

        def send(topic: str, key: str, value: bytes) -> None:
            failed: list[str] = []
            producer.produce(topic, value=value, key=key.encode(),
                             on_delivery=lambda err, _m: failed.append(str(err)) if err is not None else None)
            if producer.flush(30) > 0 or failed:
                raise AiotError(f"Kafka {self.brokers}: the ack for a command written to OPC UA was not "
                                f"delivered to {topic}: {failed[0] if failed else 'timed out'}")

        return _WriterPartition(self.cfg, self.actuators, self.ack_topic, send, lambda: producer.flush(10),
                                signer=self.signer)
