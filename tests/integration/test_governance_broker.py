"""Governance against the real broker (issue 19 item 3): the output topics the flow creates carry the
``[governance] retention`` as ``retention.ms``. Real parts: the session's Tansu broker, the admin client."""
from __future__ import annotations

from confluent_kafka.admin import AdminClient, ConfigResource

from aiotstream.config import default_site
from aiotstream.io.kafka import ensure_topics, output_topics, topic_configs


def _described(brokers: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": brokers})
    fut = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    entries = next(iter(fut.values())).result(timeout=15)
    return {k: v.value for k, v in entries.items()}


def test_output_topics_are_created_with_the_retention_of_their_kind(kafka_broker: str) -> None:
    cfg = default_site(1, site_id="gov-ret", governance={"retention": {"score": "7d", "alert": "400d",
                                                                       "deadletter": "forever"}})
    topics = output_topics(cfg)
    created = ensure_topics(kafka_broker, topics.values(), partitions=1, configs=topic_configs(cfg))
    assert set(created) == set(topics.values())
    assert _described(kafka_broker, topics["score"]).get("retention.ms") == str(7 * 86_400_000)
    assert _described(kafka_broker, topics["alert"]).get("retention.ms") == str(400 * 86_400_000)
    assert _described(kafka_broker, topics["deadletter"]).get("retention.ms") == "-1"
    # a kind without a retention keeps the broker's default (no topic-level override)
    assert _described(kafka_broker, topics["kpi"]).get("retention.ms") != str(7 * 86_400_000)
