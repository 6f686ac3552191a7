"""Model rollout: promotions of ONNX models (champion, canary, shadow) from the site's control topics.

A promotion is checked once, where the control message is decoded (artifact hash and signature, feature
columns, the validation gate), and copied to every asset as a :class:`~aiotstream.records.ModelSwitch`;
each asset switches between windows (:func:`switch`). A refused promotion leaves every asset's model as
it was and says why on ``<site>.models``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aiotstream.errors import ModelError
from aiotstream.lineage import inputs_block, make_id
from aiotstream.models.scoring import canary_share
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import DeadLetter, ModelSwitch, Output, Position

log = logging.getLogger(__name__)


class Rollout:
    """Turns control messages into model records and per-asset switches (see :meth:`promote`)."""

    def __init__(self, rt: SiteRuntime, now_ns: Callable[[], int]):
        self.rt = rt
        self.now_ns = now_ns
        self.champions: list[str] = []  # the champions this process has seen, oldest first (for the log)

    def _reject(self, raw: bytes, pos: Position, reason: str, message: str) -> Output:
        return self.rt.deadletter(DeadLetter(raw, pos, reason, message))

    def promote(self, raw: bytes, pos: Position, emit: Callable[[Any], None],
                reject: Callable[[Output], None], original: bytes | None = None) -> None:
        """A model promotion from ``<site>.control``: checked once here (artifact hash and signature, feature
        columns, the validation gate), then copied to every asset, which switches between windows.

        ``{"type": "promote", "version": "1.1.0", "variant": "champion" | "canary" | "shadow",
        "fraction": 0.25 (canary), "model": name (default: the site's), "by": "...", "ts": ns}``;
        ``"version": null`` with ``"variant": "shadow"`` stops the shadow; optional ``note``. A refused
        promotion (the artifact fails its checks, a malformed manifest included) leaves every asset's model
        as it was and says why on ``<site>.models``; a malformed message (a field of the wrong type or out of
        range, an unknown field) is dead-lettered as ``bad_control`` naming the fields. ``original``: the
        message as it came (what a dead letter keeps) when ``raw`` is the verified message without its
        ``auth`` (``[auth]``).
        """
        store = self.rt.models
        kept = raw if original is None else original
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            reject(self._reject(kept, pos, "bad_json", f"control message is not JSON: {exc}"))
            return
        problem = promote_problem(msg)
        if problem is None and store is None:
            problem = "this site has no ONNX models (model.kind is not \"onnx\")"
        if problem is not None:
            reject(self._reject(kept, pos, "bad_control", problem))
            return
        assert store is not None
        p = Promote.model_validate(msg)
        variant, version = p.variant, p.version
        ref = None if version is None else store.ref(f"{p.model}@{version}" if p.model else version)
        by = p.by
        gate = None
        reason = "promoted"
        try:
            if ref is not None:
                store.get(ref)  # hash, signature, feature columns
                if variant != "shadow":
                    gate = store.gate(ref)
                    if gate is not None and not gate.passed:
                        raise ModelError(f"validation gate: {gate.reason}")
                    reason = "promoted" if gate is None else f"promoted: {gate.reason}"
        except ModelError as exc:  # ModelRefused included: the running models stay
            log.warning("model promotion refused (%s@%s offset %s): %s", pos.topic, pos.partition, pos.offset,
                        exc)
            reject(self._model_record("refused", ref, variant, str(exc), pos, by, gate))
            return
        reject(self._model_record("promoted", ref, variant, reason if ref else "shadow stopped", pos, by,
                                  gate))
        self._log_change(ref, variant, by, reason if ref else "shadow stopped")
        ts = p.ts or self.now_ns()
        for asset in sorted(self.rt.assets):
            emit(ModelSwitch(asset, variant, ref, p.fraction, ts, pos))

    def _log_change(self, ref: str | None, variant: str, by: str, reason: str) -> None:
        """One info line per accepted promotion; a champion that was live before comes back as a rollback."""
        store = self.rt.models
        assert store is not None
        history = self.champions
        if not history:
            history.append(store.ref(self.rt.config.model.version))
        who = f" by {by}" if by else ""
        if variant == "champion" and ref is not None and ref in history[:-1]:
            log.info("model rolled back to %s (champion, from %s)%s", ref, history[-1], who)
        elif ref is None:
            log.info("model shadow stopped%s", who)
        else:
            log.info("model %s promoted as %s%s: %s", ref, variant, who, reason)
        if variant == "champion" and ref is not None:
            history.append(ref)

    def _model_record(self, event: str, ref: str | None, variant: str, reason: str, pos: Position, by: str,
                      gate: Any) -> Output:
        rt = self.rt
        ctx = rt.ctx
        model = None
        if event == "promoted" and ref is not None and rt.models is not None:
            model = rt.models.block(ref, variant)
        record = {
            "schema": "aiotstream.model/1",
            "id": make_id("model", ctx.site, pos.topic, pos.partition, pos.offset, event),
            "event": event, "ref": ref, "variant": variant, "reason": reason,
            "gate": None if gate is None else gate.to_dict(), "by": by or None,
            "asset": None, "detector": None, "feature": None, "window_range": None,
            "source": {"topic": pos.topic, "partition": pos.partition, "offset": pos.offset},
            **ctx.block(inputs=inputs_block([(pos.topic, pos.partition, pos.offset, pos.offset)]),
                        window=None,
                        features=None, model=model),
        }
        return Output("model", ctx.site, record)


_MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"  # as the registry's names and versions


class Promote(BaseModel):
    """A model promotion on ``<site>.control`` (see :meth:`Ingestor._control`); unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["promote"]
    version: str | None = Field(default=None, pattern=_MODEL_NAME)
    variant: Literal["champion", "canary", "shadow"] = "champion"
    fraction: float = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)
    model: str | None = Field(default=None, pattern=_MODEL_NAME)
    by: str = Field(default="", max_length=256)
    note: str = Field(default="", max_length=4096)
    ts: int | None = Field(default=None, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _stop_only_a_shadow(self) -> Promote:
        if self.version is None and self.variant != "shadow":
            raise ValueError("only a shadow can be stopped (version null); name the version to promote")
        return self


def promote_problem(msg: Any) -> str | None:
    """Why ``msg`` (parsed JSON) is not a promotion, naming the fields, or None.

    >>> promote_problem({"type": "promote", "version": "1.1.0", "variant": "canary", "fraction": 0.25})
    >>> promote_problem({"type": "promote", "version": 1.1})
    'version: Input should be a valid string (got 1.1)'
    """
    if not isinstance(msg, dict) or msg.get("type") != "promote":
        return 'a control message is {"type": "promote", "version": ..., "variant": ...}'
    try:
        Promote.model_validate(msg)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(x) for x in err["loc"]) or "message"
            got = err.get("input")
            shown = "" if isinstance(got, dict) or err["type"] == "missing" else f" (got {str(got)[:64]})"
            parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}{shown}")
        return "; ".join(parts)
    return None


def switch(asset: str, sw: ModelSwitch, model_ref: str | None, variant: str, shadow_ref: str | None,
           champion: str) -> tuple[str | None, str, str | None]:
    """An asset's ``(model_ref, variant, shadow_ref)`` after a promotion reaches it (between two windows).

    A canary covers the assets whose :func:`~aiotstream.models.scoring.canary_share` is below its fraction;
    an asset a new canary no longer covers goes back to ``champion`` (the asset's latest champion promoted,
    else the config's).

    >>> switch("a", ModelSwitch("a", "champion", "m@2", 0.0, 0, None), "m@1", "champion", None, "m@1")
    ('m@2', 'champion', None)
    >>> switch("a", ModelSwitch("a", "shadow", "m@3", 0.0, 0, None), "m@1", "champion", None, "m@1")
    ('m@1', 'champion', 'm@3')
    """
    if sw.variant == "shadow":
        return model_ref, variant, sw.ref
    if sw.variant == "champion":
        assert sw.ref is not None
        return sw.ref, "champion", shadow_ref
    if canary_share(asset) < sw.fraction:
        return sw.ref, "canary", shadow_ref
    if variant == "canary":  # a new canary that no longer covers this asset: back to the champion
        return champion, "champion", shadow_ref
    return model_ref, variant, shadow_ref
