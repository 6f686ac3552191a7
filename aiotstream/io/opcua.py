"""OPC UA: a Bytewax source that subscribes to configured nodes (asyncua client in a background thread).

The client runs its own asyncio loop in a thread, creates one subscription
(``publishing_interval_ms``) with a monitored item per configured node
(``sampling_interval_ms``, ``monitored_queue_size`` values kept by the server
per node) and puts every data change on a bounded queue (``queue_size``);
``next_batch`` drains it and never waits. When the queue is full the client
stops asking the server for more until the flow has caught up (the server's
queues hold the values meanwhile; a value it had to discard arrives with the
Overflow bit set and is counted, see below).

Each data change becomes one message in the ``opcua`` payload format
(:func:`~aiotstream.codecs.iot.encode_opcua`: value, status code, source and
server timestamps), decoded in the flow's decode step like any other payload:

* event time: the server timestamp (``timestamp = "server"``, default) or the
  source timestamp (``"source"``), the other one if it is missing, else arrival;
* status: Good and Uncertain values pass; Bad ones become dead letters with
  reason ``bad_quality`` (``bad_quality = "deadletter"``) or readings carrying
  the status (``"flag"``), which windows count as input but leave out of values.

**Outages.** The source owns its connection (asyncua's own reconnect supervisor
is not used: it re-sent requests on a session that was not active yet and could
stop publishing for good). When the connection is lost (the socket closes,
asyncua's keep-alive probe fails, or no publish response comes for three
keep-alive intervals) it drops the client and connects a new one, retrying with
backoff from ``reconnect_min_s`` doubling to ``reconnect_max_s``, until the
flow stops. On the new session it first tries to take over the old
subscription (TransferSubscriptions) and to get the notifications the server
still holds for it (Republish): after a network outage shorter than the
server's session timeout nothing is lost. When that is not possible (the server
restarted, or forgot the session) it creates a new subscription; the server then
sends each node's current value. Nothing is invented: values a node took while
the connection was down and that the server did not keep are gone, and only the
server's own values come through.

Duplicates are dropped and counted (:data:`~aiotstream.runstats.STATS` group
``dropped``, key ``opcua_duplicate``): a notification message whose sequence
number was already processed (republished after a restore), and a node's value
identical to the last one delivered for it (same source timestamp, or server
timestamp when there is none, status and value: the current value a new
subscription sends after a reconnect, when the node has not changed). Known
losses go to group ``losses``: ``opcua_queue_overflow`` (a value arrived with the
Overflow bit: the server discarded at least one earlier value of that node) and
``opcua_notifications_missed`` (notification messages the server no longer had
when the subscription was restored).

The log says what happens in a few lines (:class:`~aiotstream.io.outage.OutageLog`):
one warning when the connection is lost or cannot be made, at most one line per
30 s while it stays down, one info line when it is back; asyncua's own log
lines go to logger ``aiotstream.io.opcua.asyncua`` at DEBUG. A flow that reads
with security policy None says so once at start.

Positions: ``topic = "opcua:<endpoint>#<node id>"``, ``partition = -1``,
``offset`` = the same strictly increasing arrival sequence as MQTT (µs clock).
OPC UA subscriptions are not replayable across flow restarts: after one the
server sends current values again, so delivery is at most once across flow
restarts.

Stopping: ``next_batch`` never blocks, and ``close`` cancels the client's loop
and returns within :data:`CLOSE_S` whatever the connection is doing.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from aiotstream.codecs.iot import encode_opcua
from aiotstream.config import OpcUaInput, OpcUaServer, SiteConfig
from aiotstream.errors import AiotError
from aiotstream.io.mqtt import SequenceClock
from aiotstream.io.outage import OutageLog, route_library_logs
from aiotstream.records import DecodeHints, DeviceMessage
from aiotstream.runstats import STATS, RunStats
from aiotstream.secretfiles import read_secret

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HINTS = DecodeHints("opcua", "arrival")
CLOSE_S = 1.5
"""How long ``close`` waits for the client thread (the contract with the CLI: under 2 s)."""
KEEPALIVE_S = 10.0
"""How often the server is asked to send a keep-alive when no value changes."""
# InfoType DataValue (bit 10) + Overflow (bit 7): the server discarded values of this node
OVERFLOW_BITS = 0x0480
_LOST_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, asyncio.TimeoutError, EOFError)


def to_ns(ts: datetime | None) -> int | None:
    """An OPC UA DateTime (UTC, naive or aware) as ns since the Unix epoch; None stays None.

    >>> to_ns(datetime(2026, 1, 1, 0, 0, 0, 5))
    1767225600000005000
    """
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    if ts <= _EPOCH:
        return None  # OPC UA's "no timestamp" is 1601-01-01
    return (ts - _EPOCH) // timedelta(microseconds=1) * 1000


def overflowed(status: int) -> bool:
    """True if a DataValue status says the server's queue for its node overflowed (earlier values discarded).

    >>> overflowed(0x00000480), overflowed(0x00000400), overflowed(0x00000080), overflowed(0)
    (True, False, False, False)
    """
    return status & 0x0C80 == OVERFLOW_BITS


def _reason(exc: BaseException) -> str:
    """One line for a log: the exception's type and message, no traceback.

    >>> _reason(ConnectionRefusedError(111, "Connect call failed"))
    'ConnectionRefusedError: [Errno 111] Connect call failed'
    >>> _reason(TimeoutError())
    'TimeoutError'
    """
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _env(name: str, what: str) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise AiotError(f"OPC UA {what}: environment variable {name!r} is not set (the site config names it)")
    return value


async def make_client(cfg: OpcUaServer, section: str = "inputs.opcua") -> Any:
    """An asyncua ``Client`` for ``cfg``: timeout, user and password, security policy, mode and certificates
    (asyncua's own reconnect supervisor off). Raises :class:`AiotError` for a password variable that is
    unset."""
    from asyncua import Client
    from asyncua.crypto import security_policies

    for what, path in (("certificate", cfg.certificate), ("private_key", cfg.private_key),
                       ("server_certificate", cfg.server_certificate)):
        if path and not os.path.isfile(path):
            raise AiotError(f"OPC UA {what} {path!r} is not a readable file ([{section}] {what})")
    # asyncua's keep-alive probe reads the server state every watchdog interval and gives up after as long:
    # one
    # second (its default) is too short for a server busy publishing, so it follows the request timeout
    client = Client(url=cfg.endpoint, timeout=cfg.timeout_s, watchdog_intervall=cfg.timeout_s)
    if cfg.username:
        client.set_user(cfg.username)
    password = read_secret(cfg.password_file, f"{section}.password_file") if cfg.password_file else \
        _env(cfg.password_env, "password")
    if password is not None:
        client.set_password(password)
    if cfg.security_policy != "None":
        from asyncua import ua

        key_password = read_secret(cfg.private_key_password_file, f"{section}.private_key_password_file") \
            if cfg.private_key_password_file else _env(cfg.private_key_password_env, "private key password")
        uri = _application_uri(cfg.certificate)
        if uri:
            client.application_uri = uri  # must match the certificate's, or servers refuse the session
        await client.set_security(getattr(security_policies, f"SecurityPolicy{cfg.security_policy}"),
                                  certificate=cfg.certificate, private_key=cfg.private_key,
                                  private_key_password=key_password,
                                  server_certificate=cfg.server_certificate or None,
                                  mode=getattr(ua.MessageSecurityMode, cfg.security_mode))
    return client


def _application_uri(cert_path: str) -> str | None:
    """The URI in a certificate's subjectAltName (an OPC UA application instance certificate has one)."""
    from cryptography import x509

    data = open(cert_path, "rb").read()  # noqa: SIM115 - small file, read once
    pem = b"-----BEGIN" in data
    cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


class _Node:
    __slots__ = ("asset", "metric", "node_id", "text", "topic")

    def __init__(self, node_id: Any, text: str, topic: str, asset: str, metric: str):
        self.node_id, self.text, self.topic, self.asset, self.metric = node_id, text, topic, asset, metric


class OpcUaConnection:
    """The asyncio side of the source: connects, subscribes, takes over or re-creates the subscription after
    an
    outage, and puts ``(topic, asset, metric, raw, arrival_ns)`` rows on ``q``. Runs in its own thread."""

    def __init__(self, cfg: OpcUaInput, q: queue.Queue[tuple[str, str, str, bytes, int]],
                 stats: RunStats | None = None):
        from asyncua import ua

        self.cfg = cfg
        self.q = q
        self.stats = stats or STATS
        self.nodes = [_Node(ua.NodeId.from_string(n.node_id), n.node_id, f"opcua:{cfg.endpoint}#{n.node_id}",
                            n.asset, n.metric) for n in cfg.nodes]
        # per node: the last delivered
        self.last_value: list[tuple[Any, ...] | None] = [None] * len(self.nodes)
        self.sub_id: int | None = None
        self.last_seq = 0  # the last notification message of sub_id fully queued
        self.token: Any = None  # the session's authentication token, to tell a resumed session from a new one
        self.carried_on = False  # the current connection carries on with an old subscription
        self.orphan: int | None = None  # a subscription given up on, to delete if the session still has it
        # asyncua's session state file: lets a new client resume the session
        self.session_path: Path | None = None
        self.keepalive_s = KEEPALIVE_S
        self.last_publish = time.monotonic()
        self.in_callback = 0  # publish callbacks running (waiting for room in the queue, perhaps)
        self.lost_reason: str | None = None  # why asyncua saw the connection go
        self.sub_problem: str | None = None  # a Bad status change of the subscription
        self.outage = OutageLog(log, f"OPC UA {cfg.endpoint}")
        self.state = "connecting"  # connecting | connected | reconnecting | closed
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[None] | None = None
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._thread_main, name="aiotstream-opcua", daemon=True)

    # ---- thread -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def _thread_main(self) -> None:
        loop = self.loop = asyncio.new_event_loop()
        state_dir = tempfile.mkdtemp(prefix="aiotstream-opcua-")  # private (0700), removed at the end
        self.session_path = Path(state_dir) / "session.json"
        try:
            self.task = loop.create_task(self._supervise())
            if self.closing.is_set():
                self.task.cancel()
            loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 - surfaced to the worker in next_batch
            self.error = exc
        finally:
            self.state = "closed"
            rest = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in rest:
                t.cancel()
            if rest:
                loop.run_until_complete(asyncio.wait(rest, timeout=0.5))
            loop.close()
            shutil.rmtree(state_dir, ignore_errors=True)

    def stop(self, timeout: float = CLOSE_S) -> None:
        """Cancel the client's loop (no reconnect after this) and wait up to ``timeout`` for the thread."""
        self.closing.set()
        loop, task = self.loop, self.task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop closed in between
                pass
        self.thread.join(timeout=timeout)
        if self.thread.is_alive():
            log.warning("OPC UA %s: the client thread did not stop within %.1f s (it is a daemon thread and "
                        "will not keep the process alive)", self.cfg.endpoint, timeout)

    # ---- connection -------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        from asyncua import ua

        cfg = self.cfg
        delay = cfg.reconnect_min_s
        first = True
        while True:
            client = None
            try:
                client = await make_client(cfg)
                client.session_state_path = self.session_path
                client.connection_lost_callback = self._on_connection_lost
                self.lost_reason = self.sub_problem = None
                # each request has its timeout, but a peer that accepts the socket and then says nothing (a
                # proxy, a server half up) would hold asyncua's hello forever: the attempt as a whole has one
                # too
                await asyncio.wait_for(client.connect(), timeout=3 * cfg.timeout_s)
                detail = await asyncio.wait_for(self._subscribe(client, first), timeout=3 * cfg.timeout_s)
            except asyncio.CancelledError:
                await self._drop(client, polite=self.closing.is_set())
                raise
            except AiotError:
                await self._drop(client)
                raise
            except (*_LOST_ERRORS, ua.UaError) as exc:
                await self._drop(client)
                if self.closing.is_set():
                    # stop() cancelled us, but asyncio.wait_for (Python 3.11) drops a cancel that arrives
                    # as the attempt fails (a refused connect): no retry after a stop, whatever came first
                    raise asyncio.CancelledError from None
                if first and _is_refusal(exc):
                    raise AiotError(f"OPC UA {cfg.endpoint} refused the connection: {_reason(exc)}; check "
                                    "username/password_env and the security settings "
                                    "of [inputs.opcua]") from None
                self.outage.failed(_reason(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, cfg.reconnect_max_s)
                continue
            first = False
            delay = cfg.reconnect_min_s
            self.state = "connected"
            self.connected.set()
            self.outage.ok(detail)
            try:
                reason = await self._watch(client)
            finally:
                if self.closing.is_set():
                    await self._drop(client, polite=True)
            self.state = "reconnecting"
            self.connected.clear()
            self.outage.failed(reason, retry_in_s=delay, attempt=False)
            await self._drop(client)

    async def _on_connection_lost(self, exc: Exception) -> None:
        self.lost_reason = _reason(exc)

    async def _watch(self, client: Any) -> str:
        """Wait until the connection is lost; return why, in a few words."""
        from asyncua.client.ua_client import UaClientState

        while True:
            await asyncio.sleep(0.1)
            if client.state is not UaClientState.CONNECTED:
                return self.lost_reason or "connection closed"
            if self.sub_problem:
                return self.sub_problem
            if not self.in_callback and time.monotonic() - self.last_publish > 3 * self.keepalive_s + 2:
                if self.carried_on:  # the old subscription did not come back to life: a new one next time
                    self.orphan, self.sub_id = self.sub_id, None
                return f"no publish response for {3 * self.keepalive_s + 2:.0f} s"

    async def _drop(self, client: Any, polite: bool = False) -> None:
        """Let a queued notification message finish (unless stopping), then tear the client down. ``polite``:
        close the session on the server too (when stopping); otherwise keep it, for a takeover."""
        if client is None:
            return
        while self.in_callback and not self.closing.is_set():
            await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(client.disconnect() if polite else _local_teardown(client), timeout=0.5)
        except Exception as exc:  # noqa: BLE001 - tearing down a client that may be dead: note it and go on
            log.debug("OPC UA %s: teardown: %s", self.cfg.endpoint, _reason(exc))
        finally:
            publish = getattr(client.uaclient.session, "_publish_task", None)  # asyncua leaves it running
            if publish is not None and not publish.done():
                publish.cancel()

    async def _subscribe(self, client: Any, first: bool) -> str:
        """Carry on with the old subscription (the session resumed, or the subscription taken over by the new
        session) and get the notifications the server kept for it, or create a new one; a line for the log."""
        session = client.uaclient.session
        if self.sub_id is not None:
            if self.token is not None and session.authentication_token == self.token:
                detail = await self._carry_on(session, "session resumed")
            else:
                detail = await self._take_over(session)
            if detail is not None:
                self.carried_on = True
                return detail
            self.sub_id = None
        self.carried_on = False
        detail = await self._create(client, session, first)
        self.token = session.authentication_token
        return detail

    async def _take_over(self, session: Any) -> str | None:
        from asyncua import ua

        sid = self.sub_id
        params = ua.TransferSubscriptionsParameters()
        params.SubscriptionIds = [sid]
        params.SendInitialValues = False
        try:
            results = await session.transfer_subscriptions(params)
        except ua.UaError as exc:
            log.debug("OPC UA %s: cannot take over subscription %s: %s", self.cfg.endpoint, sid, _reason(exc))
            return None
        if not results or not results[0].StatusCode.is_good():
            log.debug("OPC UA %s: cannot take over subscription %s: %s", self.cfg.endpoint, sid,
                      results[0].StatusCode.name if results else "no result")
            return None
        detail = await self._carry_on(session, f"subscription {sid} taken over by a new session")
        if detail is not None:
            self.token = session.authentication_token
        return detail

    async def _carry_on(self, session: Any, how: str) -> str | None:
        """Route the old subscription's publish responses to us again and ask for the notification messages
        sent
        but not received (Republish), in order, before publishing goes on; None if the server no longer has
        the
        subscription."""
        from asyncua import ua

        sid = self.sub_id
        session._subscription_callbacks[sid] = self._on_publish  # as asyncua's own Subscription.restore does
        got = 0
        seq = self.last_seq + 1
        while got < 100_000:
            try:
                msg = await session.republish(sid, seq)
            except ua.uaerrors.BadMessageNotAvailable:
                break
            except ua.UaStatusCodeError as exc:  # e.g. BadSubscriptionIdInvalid: it is gone
                session._subscription_callbacks.pop(sid, None)
                log.debug("OPC UA %s: subscription %s cannot go on: %s", self.cfg.endpoint, sid, _reason(exc))
                return None
            if msg.SequenceNumber != seq:  # some servers answer an empty message instead of the Bad status
                break
            got += 1
            await self._on_publish(ua.PublishResult(SubscriptionId=sid, NotificationMessage=msg))
            seq += 1
        self.last_publish = time.monotonic()
        session.ensure_publish_loop()
        return f"{how}, {got} notification message(s) republished"

    async def _create(self, client: Any, session: Any, first: bool) -> str:
        from asyncua import ua

        cfg = self.cfg
        if self.orphan is not None:
            try:
                await session.delete_subscriptions([self.orphan])
            except ua.UaError as exc:  # gone with its session already: nothing to delete
                log.debug("OPC UA %s: deleting subscription %s: %s", cfg.endpoint, self.orphan, _reason(exc))
            self.orphan = None
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = cfg.publishing_interval_ms
        # a keep-alive every ~10 s when nothing changes (asyncua's default is 45 min), so a subscription that
        # died is told from a quiet one within 30 s; kept by the server for an hour without publish requests
        params.RequestedMaxKeepAliveCount = max(1, math.ceil(KEEPALIVE_S * 1000 / cfg.publishing_interval_ms))
        an_hour = math.ceil(3_600_000 / cfg.publishing_interval_ms)
        params.RequestedLifetimeCount = min(0xFFFF_FFFF, max(3 * params.RequestedMaxKeepAliveCount, an_hour))
        params.MaxNotificationsPerPublish = 10_000
        params.PublishingEnabled = True
        params.Priority = 0
        result = await session.create_subscription(params, self._on_publish)
        self.sub_id, self.last_seq = result.SubscriptionId, 0
        self.keepalive_s = result.RevisedPublishingInterval / 1000 * max(1, result.RevisedMaxKeepAliveCount)
        self.last_publish = time.monotonic()
        items = []
        for i, node in enumerate(self.nodes):
            rv = ua.ReadValueId()
            rv.NodeId = node.node_id
            rv.AttributeId = ua.AttributeIds.Value
            mp = ua.MonitoringParameters()
            mp.ClientHandle = i
            mp.SamplingInterval = cfg.sampling_interval_ms
            mp.QueueSize = cfg.monitored_queue_size
            mp.DiscardOldest = True
            req = ua.MonitoredItemCreateRequest()
            req.ItemToMonitor = rv
            req.MonitoringMode = ua.MonitoringMode.Reporting
            req.RequestedParameters = mp
            items.append(req)
        mparams = ua.CreateMonitoredItemsParameters()
        mparams.SubscriptionId = result.SubscriptionId
        mparams.ItemsToCreate = items
        mparams.TimestampsToReturn = ua.TimestampsToReturn.Both
        results = await session.create_monitored_items(mparams)
        bad = [(n.text, r.StatusCode.name) for n, r in zip(self.nodes, results) if not r.StatusCode.is_good()]
        if bad:
            text = ", ".join(f"{n} ({code})" for n,
                             code in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5
                                                                         else "")
            if first:
                raise AiotError(f"OPC UA {cfg.endpoint}: cannot subscribe to {text}; check the node ids")
            raise ua.UaError(f"cannot subscribe to {text}")
        return f"new session and subscription, {len(items)} node(s)"

    # ---- data ---------------------------------------------------------------------------------------
    async def _on_publish(self, result: Any) -> None:
        """asyncua's publish loop awaits this for every publish response of our subscription, so while it
        waits
        for room in the queue no more are asked for: backpressure up to the server's queues."""
        from asyncua import ua

        self.last_publish = time.monotonic()
        msg = result.NotificationMessage
        data = msg.NotificationData
        if not data:
            return  # a keep-alive
        if result.SubscriptionId != self.sub_id:
            log.debug("OPC UA %s: notification for an old subscription %s ignored", self.cfg.endpoint,
                      result.SubscriptionId)
            return
        seq = msg.SequenceNumber
        changes = [d for d in data if isinstance(d, ua.DataChangeNotification)]
        for d in data:
            if isinstance(d, ua.StatusChangeNotification) and not d.Status.is_good():
                self.sub_problem = f"subscription status {d.Status.name}"
        if not changes:
            return
        if seq and seq <= self.last_seq:  # a republished message already processed
            self.stats.add("dropped", "opcua_duplicate", sum(len(d.MonitoredItems) for d in changes))
            return
        self.in_callback += 1
        try:
            rows, counts = self._rows(changes)
            if counts:
                for group, key, n in counts:
                    self.stats.add(group, key, n)
            await self._put(rows)
            if seq:
                if self.last_seq and seq > self.last_seq + 1:
                    self.stats.add("losses", "opcua_notifications_missed", seq - self.last_seq - 1)
                self.last_seq = seq
        finally:
            self.in_callback -= 1
            self.last_publish = time.monotonic()

    def _rows(self, changes: list[Any]) -> tuple[list[tuple[str, str, str, bytes, int]],
                                                 list[tuple[str, str, int]]]:
        cfg, nodes, last = self.cfg, self.nodes, self.last_value
        rows = []
        dup = over = 0
        now = time.time_ns()
        for d in changes:
            for item in d.MonitoredItems:
                i = item.ClientHandle
                if not 0 <= i < len(nodes):
                    continue
                dv = item.Value
                status = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
                value = dv.Value.Value if dv.Value is not None else None
                src, srv = to_ns(dv.SourceTimestamp), to_ns(dv.ServerTimestamp)
                ident = (src if src is not None else srv, status, repr(value))
                if ident == last[i]:
                    dup += 1
                    continue
                last[i] = ident
                if overflowed(status):
                    over += 1
                node = nodes[i]
                name = dv.StatusCode.name if dv.StatusCode is not None else "Good"
                raw = encode_opcua(node.text, value, status, src, srv, name, cfg.timestamp, cfg.bad_quality)
                rows.append((node.topic, node.asset, node.metric, raw, now))
        counts = []
        if dup:
            counts.append(("dropped", "opcua_duplicate", dup))
        if over:
            counts.append(("losses", "opcua_queue_overflow", over))
        return rows, counts

    async def _put(self, rows: list[tuple[str, str, str, bytes, int]]) -> None:
        put = self.q.put_nowait
        for row in rows:
            while True:
                try:
                    put(row)
                    break
                except queue.Full:
                    await asyncio.sleep(0.005)


async def _local_teardown(client: Any) -> None:
    """Stop a client's tasks and drop its socket without talking to the server (its session stays there, to be
    taken over by the next client)."""
    client.uaclient.request_disconnect()
    client.uaclient.pre_request_hook = None
    tasks = [t for t in (getattr(client, n, None) for n in ("_stale_watchdog_task", "_supervisor_task",
                                                           "_renew_channel_task")) if t is not None
             and not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=0.2)
    client.disconnect_socket()


def _is_refusal(exc: BaseException) -> bool:
    """True for errors that say the server will not have us (credentials, certificates, policy): fatal at
    start,
    retried later (a server restarting with another configuration is an outage too)."""
    name = type(exc).__name__
    return name.startswith(("BadUser", "BadIdentityToken", "BadCertificate", "BadSecurity")) or \
        "No matching endpoints" in str(exc)


class _OpcUaPartition(StatefulSourcePartition[DeviceMessage, int]):
    def __init__(self, cfg: OpcUaInput, batch: int, resume: int | None, stop: threading.Event | None,
                 idle_stop_s: float | None, stats: RunStats | None = None):
        self.cfg = cfg
        self.batch = batch
        self.clock = SequenceClock(resume if resume is not None else -1)
        self.stop = stop
        self.idle_stop_s = idle_stop_s
        self.q: queue.Queue[tuple[str, str, str, bytes, int]] = queue.Queue(maxsize=cfg.queue_size)
        self.conn = OpcUaConnection(cfg, self.q, stats)
        self.connected = self.conn.connected
        self.last_data = time.monotonic()
        self.idle = False
        self.conn.start()

    def next_batch(self) -> list[DeviceMessage]:
        out: list[DeviceMessage] = []
        get, clock = self.q.get_nowait, self.clock
        for _ in range(self.batch):
            try:
                topic, asset, metric, raw, arrival = get()
            except queue.Empty:
                break
            out.append(DeviceMessage(topic, -1, clock.next(), raw, _HINTS, asset, metric, arrival))
        now = time.monotonic()
        if out:
            self.last_data, self.idle = now, False
            return out
        err = self.conn.error
        if err is not None:
            if isinstance(err, AiotError):
                raise AiotError(f"OPC UA source stopped: {err}") from None
            raise AiotError(f"OPC UA source stopped: {_reason(err)}") from err
        self.idle = True
        if self.stop is not None and self.stop.is_set() and now - self.last_data >= (self.idle_stop_s or 0.0):
            raise StopIteration()
        return out

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(milliseconds=5) if self.idle else None

    def snapshot(self) -> int:
        return self.clock.last

    def close(self) -> None:
        self.conn.stop()


class OpcUaSource(FixedPartitionedSource[DeviceMessage, int]):
    """One OPC UA server connection (one subscription) as one partition.

    ``stop`` + ``idle_stop_s`` end the input (tests, bounded runs). Constructing
    one routes asyncua's log lines to DEBUG and warns once if the connection is
    not secured.
    """

    def __init__(self, cfg: OpcUaInput, batch: int = 1000, *, stop: threading.Event | None = None,
                 idle_stop_s: float | None = None, stats: RunStats | None = None):
        self.cfg = cfg
        self.batch = batch
        self.stop = stop
        self.idle_stop_s = idle_stop_s
        self.stats = stats
        route_library_logs("asyncua", f"{__name__}.asyncua")
        warning = cfg.security_warning()
        if warning:
            log.warning("%s", warning)

    def list_parts(self) -> list[str]:
        return [f"opcua:{self.cfg.endpoint}"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _OpcUaPartition:
        return _OpcUaPartition(self.cfg, self.batch, resume_state, self.stop, self.idle_stop_s, self.stats)


def opcua_source(config: SiteConfig, **kwargs: Any) -> OpcUaSource:
    if config.inputs.opcua is None:
        raise AiotError("the site config has no [inputs.opcua] table")
    return OpcUaSource(config.inputs.opcua, config.inputs.poll_batch, **kwargs)
