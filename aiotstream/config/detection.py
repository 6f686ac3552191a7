"""How data becomes scores: windows, feature sets and models (online, ONNX, the gate)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from aiotstream.config.base import MAX_WINDOWS_PER_INPUT, _Model


class WindowConfig(_Model):
    length_s: float = Field(default=1.0, gt=0, le=3600)
    hop_s: float = Field(default=1.0, gt=0, le=3600)
    allowed_lateness_s: float = Field(default=0.5, ge=0, le=3600)
    max_future_s: float = Field(default=300.0, gt=0,
                                description="frames further ahead of wall-clock are dead-lettered")
    max_past_s: float = Field(
        default=604_800.0, gt=0, le=315_360_000,
        description="inputs whose event time is further behind the asset's own newest event time (and, for "
                    "live device sources (MQTT, OPC UA) while tailing, behind their arrival time) are "
                    "dead-lettered ('too_old'); files and Kafka backlogs may be as old as they like, as long "
                    "as each asset's data is in order to within this")
    idle_close_s: float = Field(default=5.0, gt=0,
                                description="close an asset's windows after this much wall-clock silence")
    wait_for_readings: bool = Field(default=True,
                                    description="hold windows until the asset's readings stream has shown up "
                                    "(false: assets send frames only)")
    state_ttl_s: float = Field(default=3600.0, ge=0,
                               description="forget an asset silent this long (0 = never)")
    stagger: bool = Field(
        default=False,
        description="start each asset's windows at its own point of the hop (a thousandth of it picked by "
                    "the asset id's CRC-32, the same in every process and run), so that a live plant's "
                    "windows do not all close in the same poll: the closing work is spread over the hop "
                    "instead of one burst each hop (lower latency upper percentiles); assets' windows then "
                    "no longer share boundaries, and ONNX models batch fewer windows a call. Applies to an "
                    "asset's windows from a fresh start (a recovered asset keeps its own)")

    @model_validator(mode="after")
    def _hop_le_length(self) -> WindowConfig:
        if self.hop_s > self.length_s:
            raise ValueError(f"hop_s ({self.hop_s}) must not exceed length_s ({self.length_s}): samples "
                             "would be skipped")
        if self.length_s > MAX_WINDOWS_PER_INPUT * self.hop_s:
            raise ValueError(f"length_s / hop_s ({self.length_s / self.hop_s:g}) must be at most "
                             f"{MAX_WINDOWS_PER_INPUT}: each input goes to that many sliding windows")
        if 0 < self.state_ttl_s < self.idle_close_s:
            raise ValueError(f"state_ttl_s ({self.state_ttl_s}) must be 0 (never) or at least idle_close_s "
                             f"({self.idle_close_s})")
        return self


class FeatureConfig(_Model):
    set: str = Field(default="vibration-basic", description="a registered waveform feature set "
                     "(aiotstream.features.FEATURE_SETS): vibration-basic, vibration-spectral")
    bands: list[tuple[float, float]] | None = Field(
        default=None, description="spectral sets only: [[lo_hz, hi_hz], ...], ordered, not overlapping, "
        "below every asset's Nyquist frequency; default: the set's bands")
    temperature_metric: str = "temperature"


class GateConfig(_Model):
    """The validation gate a model must pass before it is promoted (``[model.onnx.gate]``).

    The candidate scores a held-out labelled set (simulated windows, faults
    injected at known times) and is refused when ``metric`` is below
    ``threshold``; the refusal, with its reason, goes to ``<site>.models``.
    """

    metric: Literal["auc", "recall_at_precision"] = "auc"
    threshold: float = Field(default=0.8, ge=0, le=1)
    assets: int = Field(default=2, ge=1, le=100)
    duration_s: float = Field(default=240.0, ge=30, le=7200)
    faults: int = Field(default=2, ge=1, le=100)
    seed: int = Field(default=1234, ge=0, le=2**32 - 1)


class LoopConfig(_Model):
    """The model loop (``[model.onnx.loop]``): what ``aiotstream retrain`` does with a retrain request.

    On a ``retrain_request`` it waits until the Parquet lake holds ``settle_s`` of windows after the drift
    point, freezes the site's windows of the last ``lookback_s`` into a dataset, trains a candidate on its
    healthy rows, runs the validation gate, then runs the candidate as shadow and as canary and judges it
    with a sequential test (:mod:`aiotstream.models.verdict`): promoted or rolled back without a person,
    unless ``approval = "required"`` (then it stops after the canary and asks). docs/model-loop.md.
    """

    datasets: str = Field(min_length=1, description="directory of the dataset store (content-addressed, "
                                                    "immutable)")
    lake: str | None = Field(default=None, description="the Parquet lake to build datasets from (default: "
                                                      "[outputs.parquet] directory)")
    lookback_s: float = Field(default=3600.0, gt=0, le=90 * 86_400,
                              description="at most this much event time before the settle point is learnt "
                                          "from (the dataset starts at the last drift point)")
    settle_s: float = Field(default=600.0, ge=0, le=30 * 86_400,
                            description="event time of data after the last drift point to wait for before "
                                        "the dataset is frozen: what the candidate learns the new normal "
                                        "from")
    min_rows: int = Field(default=200, ge=10, le=10**9,
                          description="healthy rows a dataset needs before a model is trained on it")
    canary_fraction: float = Field(default=0.25, gt=0, lt=1,
                                   description="share of the assets the candidate decides for as canary")
    alpha: float = Field(default=0.05, gt=0, lt=0.5,
                         description="chance of rolling back a candidate that flags no more than the "
                                     "champion")
    beta: float = Field(default=0.05, gt=0, lt=0.5,
                        description="chance of promoting a candidate that flags more (as worse_share says)")
    worse_share: float = Field(default=0.75, gt=0.5, lt=1,
                               description="the alternative of the sequential test: of the windows "
                                           "where the two models disagree, the share the candidate "
                                           "alone flags when it is worse")
    min_pairs: int = Field(default=200, ge=1, le=10**9,
                           description="paired windows (champion and candidate on the same window) "
                                       "before a phase can pass")
    max_pairs: int = Field(default=20_000, ge=1, le=10**9,
                           description="undecided after this many paired windows: rolled back")
    approval: Literal["auto", "required"] = Field(
        default="auto", description="auto: promote to champion on a passing canary verdict; required: "
                                    "stop there and ask a person (model_admin) to promote")
    cooldown_s: float = Field(default=600.0, ge=0, le=30 * 86_400,
                              description="wall-clock seconds after a loop ends before the next "
                                          "retrain request is acted on")

    @model_validator(mode="after")
    def _pairs(self) -> LoopConfig:
        if self.max_pairs < self.min_pairs:
            raise ValueError(f"max_pairs ({self.max_pairs}) must be at least min_pairs ({self.min_pairs})")
        return self


class OnnxConfig(_Model):
    """ONNX models from a registry, scored in batches across assets (``[model.onnx]``; ``kind = "onnx"``).

    The champion is ``[model] name`` at ``[model] version``. Paths are taken
    relative to the working directory of the flow.
    """

    registry: str = Field(min_length=1, description="directory of the model registry (name/version/...)")
    verify_key: str | None = Field(default=None,
                                   description="Ed25519 public key (PEM) that signs the artifacts")
    hmac_key_env: str | None = Field(default=None,
                                     description="environment variable holding an HMAC-SHA256 key")
    allow_unsigned: bool = Field(default=False,
                                 description="accept artifacts without a signature (tests only)")
    max_batch: int = Field(default=512, ge=1, le=65_536, description="rows per model call at most")
    max_delay_ms: float = Field(default=50.0, ge=0, le=60_000,
                                description="most that batching adds to a window's decisions: the batcher "
                                            "flushes early by the measured cost of scoring and deciding "
                                            "the rows waiting")
    threads: int = Field(default=1, ge=1, le=64, description="onnxruntime intra-op threads per process")
    shadow: str | None = Field(default=None, description="a version of the same model scoring beside the "
                               "champion; only the champion decides")
    canary: str | None = Field(default=None,
                               description="a version that decides for canary_fraction of the assets")
    canary_fraction: float = Field(default=0.0, ge=0, le=1)
    gate: GateConfig | None = Field(default=None, description="refuse promotions below this metric")
    loop: LoopConfig | None = Field(default=None, description="retrain on drift, judge and promote "
                                    "automatically (aiotstream retrain)")

    @model_validator(mode="after")
    def _canary_needs_fraction(self) -> OnnxConfig:
        if self.canary is None and self.canary_fraction > 0:
            raise ValueError("canary_fraction is set but no canary version is named (canary = \"<version>\")")
        return self


class ModelConfig(_Model):
    # "calibrated" (default): tail probability, load factor, persistence (docs/detection.md, Window features)
    kind: Literal["calibrated", "zscore", "hst", "onnx"] = "calibrated"
    name: str = "baseline"
    version: str = "1"
    warmup_windows: int = Field(default=20, ge=2, le=100_000)
    # HalfSpaceTrees settings (kind = "hst")
    n_trees: int = Field(default=25, ge=1, le=1000)
    height: int = Field(default=8, ge=2, le=20)
    window_size: int = Field(default=50, ge=2, le=100_000)
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    # drift detector on the anomaly score (and on drift_features): ADWIN, Page-Hinkley or KSWIN
    drift_detector: Literal["adwin", "page_hinkley", "kswin", "none"] = "adwin"
    # ADWIN's / Page-Hinkley's delta; KSWIN's alpha (significance of its Kolmogorov-Smirnov test)
    drift_delta: float = Field(default=0.002, gt=0, lt=1)
    # feature columns (e.g. "x.rms", "temperature.mean") watched by their own drift detector each
    drift_features: list[str] = Field(default_factory=list, max_length=256)
    # KSWIN only: the sliding window, and the recent part of it tested against a sample of the rest
    drift_window_size: int = Field(default=100, ge=10, le=100_000)
    drift_stat_size: int = Field(default=30, ge=5, le=10_000)

    @field_validator("drift_features")
    @classmethod
    def _unique_features(cls, v: list[str]) -> list[str]:
        dups = sorted({f for f in v if v.count(f) > 1})
        if dups:
            raise ValueError(f"feature(s) {', '.join(map(repr, dups))} listed more than once")
        return v

    # batched ONNX models from a registry (kind = "onnx")
    onnx: OnnxConfig | None = None

    @model_validator(mode="after")
    def _onnx_table(self) -> ModelConfig:
        if self.kind == "onnx" and self.onnx is None:
            raise ValueError('kind = "onnx" needs a [model.onnx] table (registry = "<dir>" at least)')
        return self


def _detector_default(name: str) -> Any:
    """The streaming detector's own default (``aiotstream.models.streaming.DetectorConfig``): the flow, the
    ``[scalar]`` table and ``aiotstream detect`` share it, so a default tuned there is the default here."""
    from aiotstream.models.streaming import DetectorConfig

    return getattr(DetectorConfig, name)


class ScalarConfig(_Model):
    """The streaming detector on each asset's scalar readings (``[scalar]``; issue 17, docs/detection.md).

    Every reading metric of an asset is a channel of its detector except the KPI state and part counter
    metrics and ``exclude``; readings with the same event time form one row. The detector fields default to
    :class:`aiotstream.models.streaming.DetectorConfig`'s (rows are readings' timestamps, 1 Hz in SKAB).
    """

    enabled: bool = Field(default=True, description="score scalar readings with the streaming detector")
    readings_only: bool = Field(default=False,
                                description="the assets send no waveform frames: windows close on the "
                                            "readings' own progress (else a bounded replay holds them until "
                                            "its end, waiting for a frames stream)")
    exclude: list[str] = Field(default_factory=list, max_length=256,
                               description="reading metrics that are not channels (besides kpi.state_metric "
                                           "and the part counters)")
    max_channels: int = Field(default=64, ge=1, le=1024,
                              description="channels per asset; readings of more metrics are counted and "
                                          "ignored")
    settle_rows: int = Field(default=_detector_default("warmup"), ge=1, le=100_000,
                             description="rows gathered before an asset's channel order is fixed and its "
                                         "detector starts (channels seen by then, in order of appearance)")
    block_s: float = Field(default=10.0, ge=0, le=3600,
                           description="event time gathered before final rows are scored as one block "
                                       "(throughput); 0 = score at every closed window")
    pipeline: Literal["default", "channels", "multivariate"] = "default"
    warmup: int = Field(default=_detector_default("warmup"), ge=2, le=100_000)
    halflife: float = Field(default=_detector_default("halflife"), gt=1, le=1e9)
    huber_c: float = Field(default=_detector_default("huber_c"), gt=0, le=100)
    accept: int = Field(default=_detector_default("accept"), ge=1, le=10**9)
    shift_k: float = Field(default=_detector_default("shift_k"), gt=0, le=1e6)
    smooth: float = Field(default=_detector_default("smooth"), gt=0, le=1)
    explained: float = Field(default=_detector_default("explained"), gt=0, lt=1)
    refresh: int = Field(default=_detector_default("refresh"), ge=1, le=10**6)
    shrink_min: float = Field(default=_detector_default("shrink_min"), ge=0, lt=1)
    spot_init: int = Field(default=_detector_default("spot_init"), ge=10, le=10**6)
    spot_level: float = Field(default=_detector_default("spot_level"), gt=0, lt=1)
    risk: float = Field(default=_detector_default("risk"), gt=0, lt=1,
                        description="tail probability below which a row is an alarm row")
    close_risk: float = Field(default=_detector_default("close_risk"), gt=0, le=1)
    open_after: int = Field(default=_detector_default("open_after"), ge=1, le=10**6)
    close_after: int = Field(default=_detector_default("close_after"), ge=1, le=10**6)
    spot_window: int = Field(default=_detector_default("spot_window"), ge=10, le=10**7)
    spot_refit: int = Field(default=_detector_default("spot_refit"), ge=1, le=10**7)
    xi_min: float = Field(default=_detector_default("xi_min"), ge=-0.5, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> ScalarConfig:
        if self.close_risk < self.risk:
            raise ValueError(f"close_risk ({self.close_risk:g}) must be at least risk ({self.risk:g}): "
                             "an alert would close on rows that are alarms")
        if self.spot_init > self.spot_window:
            raise ValueError(f"spot_init ({self.spot_init}) must not exceed spot_window ({self.spot_window})")
        return self

    def detector_config(self) -> Any:
        """The :class:`~aiotstream.models.streaming.DetectorConfig` of these settings."""
        from dataclasses import fields

        from aiotstream.models.streaming import DetectorConfig

        return DetectorConfig(**{f.name: getattr(self, f.name) for f in fields(DetectorConfig)})
