"""MQTT topic filters and templates: which subscription a topic belongs to, and its asset/metric.

Whether a topic matches a filter is paho's decision (:class:`paho.mqtt.matcher.MQTTMatcher`,
the trie behind ``topic_matches_sub``: ``+`` one level, ``#`` the rest including the parent
level, no wildcard match of ``$`` topics at the first level). What is ours: a shared
subscription ``$share/<group>/<filter>`` matches like ``<filter>``; the checks that give a
config error naming the bad level; and the templates that build the asset / metric from the
topic's levels: ``{N}`` is level N of the topic counted from 0, ``{#}`` what ``#`` matched
(levels joined with ``/``); other text is copied.

>>> rule = TopicRule.build("plant/+/+/temperature", asset="{2}", metric="temperature")
>>> rule.match("plant/line-1/pump-7/temperature")
('pump-7', 'temperature')
>>> rule.match("plant/line-1/pump-7/vibration") is None
True
>>> TopicRule.build("bldg/#", asset="{1}", metric="{#}").match("bldg/m1/hvac/power")
('m1', 'm1/hvac/power')
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from paho.mqtt.client import topic_matches_sub
from paho.mqtt.matcher import MQTTMatcher

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"\{([0-9]+|#)\}")


def filter_levels(topic_filter: str) -> list[str]:
    """The filter's levels, without a ``$share/<group>/`` prefix.

    >>> filter_levels("$share/g/plant/+")
    ['plant', '+']
    """
    levels = topic_filter.split("/")
    if levels[0] == "$share" and len(levels) >= 3:
        levels = levels[2:]
    return levels


def check_filter(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid MQTT filter, or None if it is.

    >>> check_filter("a/#/b")
    "'#' must be the last level"
    """
    if not topic_filter:
        return "a filter must not be empty"
    if len(topic_filter.encode()) > 65535:
        return "a filter must be at most 65535 bytes"
    if "\x00" in topic_filter:
        return "a filter must not contain NUL"
    levels = filter_levels(topic_filter)
    for i, lv in enumerate(levels):
        if "#" in lv and (lv != "#" or i != len(levels) - 1):
            return "'#' must be the last level" if lv == "#" else f"'#' must fill a whole level, not {lv!r}"
        if "+" in lv and lv != "+":
            return f"'+' must fill a whole level, not {lv!r}"
    return None


def check_template(template: str, topic_filter: str) -> str | None:
    """Why ``template`` cannot be filled from topics matching ``topic_filter``, or None.

    >>> check_template("{5}", "a/+/b")
    'level {5} does not exist: the filter has 3 level(s), counted from 0'
    """
    levels = filter_levels(topic_filter)
    multi = levels[-1] == "#"
    fixed = len(levels) - 1 if multi else len(levels)
    for m in _PLACEHOLDER.finditer(template):
        key = m.group(1)
        if key == "#":
            if not multi:
                return "{#} needs a filter that ends in '#'"
        elif int(key) >= fixed and not multi:
            return f"level {{{key}}} does not exist: the filter has {fixed} level(s), counted from 0"
    rest = _PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        return "placeholders are {N} (topic level N, from 0) or {#}; write other braces nowhere"
    return None


def fill(template: str, parts: Sequence[str], rest: str) -> str:
    """Fill a template from the topic levels (levels past the end fill as empty).

    >>> fill("{1}-{3}/{#}", ["a", "b", "c"], "c")
    'b-/c'
    """
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "#":
            return rest
        i = int(key)
        return parts[i] if i < len(parts) else ""
    return _PLACEHOLDER.sub(sub, template)


@dataclass(frozen=True, slots=True)
class TopicRule(Generic[T]):
    """One subscription: a filter, asset/metric templates (None: the payload says) and a payload tag."""

    topic_filter: str
    levels: tuple[str, ...]
    asset: str | None
    metric: str | None
    tag: T | None = None

    @classmethod
    def build(cls, topic_filter: str, asset: str | None = None, metric: str | None = None,
              tag: T | None = None) -> TopicRule[T]:
        err = check_filter(topic_filter)
        if err:
            raise ValueError(f"topic filter {topic_filter!r}: {err}")
        for t in (asset, metric):
            if t:
                err = check_template(t, topic_filter)
                if err:
                    raise ValueError(f"template {t!r} for {topic_filter!r}: {err}")
        return cls(topic_filter, tuple(filter_levels(topic_filter)), asset or None, metric or None, tag)

    @property
    def match_filter(self) -> str:
        """The filter topics are matched against (a shared subscription's without ``$share/<group>/``)."""
        return "/".join(self.levels)

    def fields(self, topic: str) -> tuple[str | None, str | None]:
        """(asset, metric) filled from a topic that matches (None where the template is unset or fills
        empty)."""
        if self.asset is None and self.metric is None:
            return None, None
        parts = topic.split("/")
        rest = "/".join(parts[len(self.levels) - 1:]) if self.levels[-1] == "#" else ""
        a = fill(self.asset, parts, rest) if self.asset else None
        k = fill(self.metric, parts, rest) if self.metric else None
        return (a or None), (k or None)

    def match(self, topic: str) -> tuple[str | None, str | None] | None:
        """(asset, metric) for a matching topic (None where the template is unset), or None."""
        if not topic_matches_sub(self.match_filter, topic):
            return None
        return self.fields(topic)


class TopicRouter(Generic[T]):
    """First matching rule wins (rules are tried in config order); results are cached per topic.

    paho's matcher finds every rule whose filter matches in one walk of its trie; the
    router keeps the first in config order.

    >>> r = TopicRouter([TopicRule.build("a/+", "{1}", "x", tag=1), TopicRule.build("a/#", "{#}", tag=2)])
    >>> r.route("a/b"), r.route("a/b/c"), r.route("b")
    ((1, 'b', 'x'), (2, 'b/c', None), None)
    """

    def __init__(self, rules: Sequence[TopicRule[T]], cache_size: int = 100_000):
        self.rules = list(rules)
        self.matcher = MQTTMatcher()
        for i, rule in enumerate(self.rules):
            key = rule.match_filter
            try:
                self.matcher[key].append(i)  # the same filter twice: both kept, the first wins
            except KeyError:
                self.matcher[key] = [i]
        self.cache: dict[str, tuple[T | None, str | None, str | None] | None] = {}
        self.cache_size = cache_size

    def route(self, topic: str) -> tuple[T | None, str | None, str | None] | None:
        hit = self.cache.get(topic, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        first = min((i for found in self.matcher.iter_match(topic) for i in found), default=None)
        res = None
        if first is not None:
            rule = self.rules[first]
            res = (rule.tag, *rule.fields(topic))
        if len(self.cache) >= self.cache_size:
            self.cache.clear()
        self.cache[topic] = res
        return res
