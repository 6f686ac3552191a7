"""What every Kafka client aiotstream makes shares: bootstrap servers, credentials from the environment,
librdkafka's log routed to Python logging, consumer-only properties kept apart, and a bounded wait for a
broker that names its address. (The consumer side, :mod:`aiotstream.io.kafka_consumer`, and the sink and
topics, :mod:`aiotstream.io.kafka`, both build on it.)"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from aiotstream.errors import AiotError
from aiotstream.io.outage import LibrdkafkaLog
from aiotstream.io.stop import STOP
from aiotstream.secretfiles import read_secret

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message

    from aiotstream.config import KafkaSecurity

BROKER_WAIT_S = 10.0
"""How long commands wait for a Kafka broker to answer at start-up before giving up with one line."""

# Consumer-only properties: on any other client (Bytewax's KafkaSource gives its add_config to the AdminClient
# that lists partitions too) librdkafka warns "CONFWARN ... is a consumer property and will be ignored by this
# producer instance" (an AdminClient is a producer handle), once per property and client.
CONSUMER_DEFAULTS = {
    "fetch.max.bytes": str(64 << 20),
    "max.partition.fetch.bytes": str(16 << 20),  # alias of fetch.message.max.bytes
}


LIBRDKAFKA_LOG = LibrdkafkaLog()
"""librdkafka's own log lines (one ``FAIL ... Connection refused`` per broker and retry: 291 lines before a
start-up failure here) as debug records of ``aiotstream.io.kafka.librdkafka``, not on stderr; the CLI says
what is wrong in one line instead."""


def client_config(brokers: str, security: KafkaSecurity | None = None) -> dict[str, object]:
    """What every Kafka client aiotstream makes starts from: bootstrap servers, librdkafka's log routed to
    Python logging (:data:`LIBRDKAFKA_LOG`), credentials from the environment
    (:func:`client_config_from_env`), then the site's ``[inputs.kafka]`` (:func:`security_config`), which
    wins over the environment.

    >>> client_config("h:9092")["bootstrap.servers"]
    'h:9092'
    """
    return {"bootstrap.servers": brokers, "logger": LIBRDKAFKA_LOG, **client_config_from_env(),
            **security_config(security)}


def security_config(security: KafkaSecurity | None) -> dict[str, str]:
    """librdkafka's settings for ``[inputs.kafka]``, secrets read from their files now (AiotError naming the
    field when a file is missing, unreadable or empty). The result holds secrets: never log it.

    >>> from aiotstream.config import KafkaSecurity
    >>> security_config(KafkaSecurity(security_protocol="SSL"))
    {'security.protocol': 'SSL'}
    >>> security_config(None)
    {}
    """
    if security is None:
        return {}
    field = "inputs.kafka."
    conf = {"security.protocol": security.security_protocol}
    if security.sasl_mechanism:
        conf["sasl.mechanism"] = security.sasl_mechanism
        conf["sasl.username"] = security.username
        conf["sasl.password"] = read_secret(security.password_file, field + "password_file")
    for name, path, key in (("ca_file", security.ca_file, "ssl.ca.location"),
                            ("cert_file", security.cert_file, "ssl.certificate.location"),
                            ("key_file", security.key_file, "ssl.key.location")):
        if path:
            if not os.access(path, os.R_OK) or not os.path.isfile(path):
                raise AiotError(f"{field}{name}: {path!r} is not a readable file")
            conf[key] = path
    if security.key_password_file:
        conf["ssl.key.password"] = read_secret(security.key_password_file, field + "key_password_file")
    return conf


def client_config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """librdkafka settings from ``AIOTSTREAM_KAFKA_<NAME>`` variables (``_`` read as ``.``), for credentials.

    >>> client_config_from_env({"AIOTSTREAM_KAFKA_SASL_USERNAME": "u", "HOME": "/root"})
    {'sasl.username': 'u'}
    """
    env = os.environ if environ is None else environ
    prefix = "AIOTSTREAM_KAFKA_"
    return {k[len(prefix):].lower().replace("_", "."): v for k, v in env.items() if k.startswith(prefix)}


def arrived(consumer: Consumer, most: int, wait_s: float) -> list[Message]:
    """The messages a consumer has for us as soon as it has one (waiting at most ``wait_s``), up to ``most``.

    Not ``consume(most, wait_s)``: librdkafka returns from that early only once it has ``most`` messages, so a
    live reader got each record up to ``wait_s`` late, all of a poll's at the same instant."""
    first = consumer.poll(wait_s)
    return [first, *consumer.consume(most - 1, 0)] if first is not None else []


def reason(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if hasattr(err, "str") else str(exc)


def metadata(admin: AdminClient, brokers: str, wait_s: float, topic: str | None = None) -> ClusterMetadata:
    """Cluster (or one topic's) metadata, asking every 0.5 s until ``wait_s`` has passed or a stop is
    requested
    (:data:`~aiotstream.io.stop.STOP`); AiotError naming the bootstrap address if no broker answered."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return admin.list_topics(topic, timeout=max(0.05, min(0.5, deadline - time.monotonic())))
        except KafkaException as exc:
            if time.monotonic() >= deadline or STOP.is_set():
                why = "stop requested" if STOP.is_set() else f"waited {wait_s:g} s"
                raise AiotError(f"no Kafka broker answers at {brokers} ({why}: {reason(exc)}); start one "
                                "(`aiotstream broker` prints its address) or give the right --brokers / "
                                "[inputs] brokers") from None


def wait_for_brokers(brokers: str, wait_s: float = BROKER_WAIT_S,
                     security: KafkaSecurity | None = None) -> AdminClient:
    """An AdminClient once a broker at ``brokers`` has answered; AiotError after ``wait_s`` without an
    answer."""
    if not brokers.strip():
        raise AiotError("no Kafka bootstrap servers given (--brokers or [inputs] brokers)")
    admin = AdminClient(client_config(brokers, security))
    metadata(admin, brokers, wait_s)
    return admin
