"""A seeded plant simulator: vibration waveforms and temperatures with labelled faults.

The simulator stands in for a plant full of rotating machines (pumps, fans,
motors). It produces the two input streams aiotstream consumes, already
encoded the way the sensors' gateways would send them:

* ``waveform``: binary frames v1 (:func:`aiotstream.codecs.encode_frame`),
  ``frame_samples`` float32 samples per channel, one frame after another per asset;
* ``reading``: JSON temperature readings (:func:`aiotstream.codecs.encode_reading`),
  metric ``"temperature"`` every ``temperature_interval_s``.

It also knows the ground truth (which asset has which fault from when to
when), so a pipeline's alerts can be scored against it. Everything is decided
by ``seed``: the same seed gives byte-identical messages.

Signal model
------------
Per asset, running speed ``f1 = rpm / 60`` Hz (30 Hz at the default 1 800 rpm).
Each vibration channel (acceleration-like units, zero mean) is sampled at the
asset's rate as a function of the *absolute* sample index ``n`` (time
``t = n / fs`` since ``start_ns``), so phases run on continuously across frames::

    x_c(t) = a1_c sin(2 pi f1 t + p1_c)          1x running speed, a1 ~ 0.2
           + a2_c sin(2 pi 2 f1 t + p2_c)        2x running speed, a2 ~ 0.1
           + ag_c sin(2 pi z f1 t + pg_c)        gear mesh, ag ~ 0.05, z = 9..17 teeth
           + sigma * N(0, 1)                     broadband noise, sigma ~ 0.3

Amplitudes and ``sigma`` vary per asset and channel by a factor drawn from
U(0.8, 1.2); phases are uniform per channel. A healthy 1 s window therefore has
rms ~0.34, kurtosis a little under 3 and crest factor ~4.

Temperature (°C) per asset: base U(40, 55), plus a slow wander of 0.1 °C
amplitude with a period of U(2, 10) minutes, plus N(0, 0.05) noise, reported
rounded to 1 m°C.

Faults (at most one per asset; :attr:`PlantSimulator.faults` is the truth)
-------------------------------------------------------------------------
``bearing_wear`` (``channel`` None)
    An outer-race defect: impacts at the defect frequency ``BPFO = r * f1`` with
    ``r`` ~ U(3.5, 3.7) (107 impacts/s at 1 800 rpm), with 1.5 % random slip in
    the spacing and U(0.6, 1.4) amplitude scatter. Each impact excites a
    structural resonance: a decaying ring ``A exp(-dt / 0.6 ms) sin(2 pi fr dt)``
    with ``fr`` ~ U(3, 4.5) kHz per channel (capped at 0.45 fs). ``A`` ramps
    linearly from 0 to 3.0 over the first 2 s and then holds (slower machines,
    with fewer impacts per second, get up to 25 % more: ``3.0 * sqrt(108 / BPFO)``). Radial channels
    get the full amplitude, the axial one (named ``z``/``axial``) 40 %. At full
    amplitude a radial channel's window kurtosis is ~8-12 and its rms ~50 %
    above healthy.
``imbalance`` (``channel`` None)
    The 1x amplitude of the radial channels rises linearly to 5x its healthy
    value over 1 s and holds (rms on x/y roughly doubles; the axial channel is
    unchanged).
``sensor_stuck`` (``channel`` = the stuck channel), 8-15 s
    The channel repeats its last value before the onset, exactly, until the end.
``spike_burst`` (``channel`` = the affected channel), 3-6 s
    Single-sample spikes of U(8, 15) x sigma with random sign, arriving as a
    Poisson process at 50 per second (crest factor goes from ~4 to ~10).
``temperature_drift`` (``channel`` None)
    Temperature rises by 0.3 °C/s from the onset until the end of the run.

Production model (optional, ``production=ProductionSpec(...)``)
----------------------------------------------------------------
For OEE, MTTR and MTBF inputs each asset also reports, as JSON readings:

* ``state``: the machine state as a code (0 planned_stop, 1 running, 2 idle,
  3 down) at the start and at every change;
* ``parts_total`` and ``parts_good``: cumulative part counters every
  ``counter_interval_s``.

The state is ``planned_stop`` in the configured planned stops, else ``down``
from ``down_delay_s`` after a fault's onset until the fault ends (or the run
does), else ``idle`` in short stops (a Poisson process of ``idle_per_hour``,
each lasting U(``idle_s``)), else ``running``. While running, a part
completes every ``cycle_time_s x speed`` seconds (``speed`` ~ U(``speed``)
per asset; a cycle cut short by a stop is lost) and is scrap with
probability ``scrap_rate``. :meth:`PlantSimulator.production_truth` gives the
exact run/planned/down time and part counts. The waveforms do not change
with the machine state.

Fault placement: ``n_faults`` distinct assets, kinds taken cyclically from a
seeded shuffle of ``fault_kinds`` (so every kind appears once
``n_faults >= len(fault_kinds)``), onsets uniform in
``[start + warmup_s, start + duration_s - 15 s]``.

Randomness: ``np.random.SeedSequence(seed)`` spawns one child for fault
placement and one per asset (by position); each asset's child spawns its own
streams for parameters, waveform noise, fault details and temperature, so an
asset's data does not depend on how the streams are interleaved.

>>> sim = PlantSimulator(2, duration_s=1.0, n_faults=0, frame_samples=2_500)
>>> (sim.n_frames, sim.n_readings)
(8, 2)
>>> [(a, seq, t0 - sim.start_ns, x.shape) for a, seq, t0, x in sim.frames()][:3]
[('asset-000', 0, 0, (3, 2500)), ('asset-001', 0, 0, (3, 2500)), ('asset-000', 1, 250000000, (3, 2500))]
"""
from __future__ import annotations

import heapq
import json
import math
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from aiotstream.codecs import encode_frame, encode_reading
from aiotstream.units import S

__all__ = [
    "FAULT_KINDS",
    "MALFORMED_CATEGORIES",
    "STATE_CODES",
    "AssetLike",
    "AssetSpec",
    "Fault",
    "PlantSimulator",
    "ProductionSpec",
    "SimMessage",
    "malformed_messages",
    "read_waveform_file",
]

FAULT_KINDS: tuple[str, ...] = ("bearing_wear", "imbalance", "sensor_stuck", "spike_burst",
                                "temperature_drift")
"""Every fault kind the simulator can inject."""

MALFORMED_CATEGORIES: tuple[str, ...] = (
    "random_bytes",
    "truncated_frame",
    "wrong_length",
    "non_finite_samples",
    "unknown_asset",
    "future_timestamp",
    "malformed_json",
)
"""The categories :func:`malformed_messages` cycles through (``SimMessage.label``)."""

STATE_CODES: dict[str, int] = {"planned_stop": 0, "running": 1, "idle": 2, "down": 3}
"""Machine-state codes of the ``state`` readings (the same as :data:`aiotstream.kpi.STATE_CODES`)."""

DEFAULT_START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
YEAR_2100_NS = 4_102_444_800_000_000_000  # 2100-01-01T00:00:00Z
TEMPERATURE_METRIC = "temperature"

# ---- signal parameters (see the module docstring) ----------------------------
AMP_1X = 0.2
AMP_2X = 0.1
AMP_GEAR = 0.05
NOISE_SIGMA = 0.3
AMP_SPREAD = 0.2  # +/- 20 % per asset and channel
GEAR_TEETH = (9, 17)
TEMP_BASE_C = (40.0, 55.0)
TEMP_NOISE_C = 0.05
TEMP_WANDER_C = 0.1
TEMP_WANDER_PERIOD_S = (120.0, 600.0)

# ---- fault parameters ---------------------------------------------------------
FAULT_TAIL_S = 15.0  # latest onset is this long before the end of the run
STUCK_DURATION_S = (8.0, 15.0)
SPIKE_DURATION_S = (3.0, 6.0)
BPFO_RATIO = (3.5, 3.7)
BEARING_AMP = 3.0
BEARING_RAMP_S = 2.0
BEARING_TAU_S = 0.6e-3
BEARING_RING_HZ = (3_000.0, 4_500.0)
BEARING_SLIP = 0.015
BEARING_AXIAL_GAIN = 0.4
BEARING_REF_RATE_HZ = 108.0  # impacts/s at 1 800 rpm, what BEARING_AMP is tuned for
BEARING_LOW_RATE_BOOST = 1.25
IMBALANCE_FACTOR = 5.0
IMBALANCE_RAMP_S = 1.0
SPIKE_RATE_HZ = 50.0
SPIKE_SIGMAS = (8.0, 15.0)
TEMP_DRIFT_C_PER_S = 0.3

_LEN_PREFIX = struct.Struct("<I")
_FRAME_HEADER = 38  # binary frame v1 header size before the asset id
_N_SAMPLES_OFFSET = 8  # u32 n_samples inside the header
_T0_OFFSET = 20  # i64 t0_ns inside the header


class AssetLike(Protocol):
    """What the simulator needs to know about an asset (site-config assets fit)."""

    @property
    def id(self) -> str: ...
    @property
    def line(self) -> str: ...
    @property
    def channels(self) -> Sequence[str]: ...
    @property
    def sample_rate_hz(self) -> float: ...
    @property
    def rpm(self) -> float: ...


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """One simulated asset (the simulator's own, minimal asset description)."""

    id: str
    line: str = "line-1"
    channels: tuple[str, ...] = ("x", "y", "z")
    sample_rate_hz: float = 10_000.0
    rpm: float = 1_800.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"id": self.id, "line": self.line, "channels": list(self.channels),
                "sample_rate_hz": self.sample_rate_hz, "rpm": self.rpm}


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: the ground truth a detector is scored against.

    ``end_ns`` None means the fault lasts until the end of the run; ``channel``
    names the affected channel for single-channel faults (sensor_stuck,
    spike_burst) and is None otherwise.

    >>> f = Fault("pump-1", "imbalance", 10, None, None)
    >>> Fault.from_dict(f.to_dict()) == f
    True
    """

    asset: str
    kind: str
    onset_ns: int
    end_ns: int | None
    channel: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"asset": self.asset, "kind": self.kind, "onset_ns": self.onset_ns,
                "end_ns": self.end_ns, "channel": self.channel}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fault:
        """Inverse of :meth:`to_dict`; raises ValueError on a bad kind or times."""
        kind = str(d["kind"])
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        onset = int(d["onset_ns"])
        end = d.get("end_ns")
        end_ns = None if end is None else int(end)
        if end_ns is not None and end_ns <= onset:
            raise ValueError(f"fault end_ns ({end_ns}) must be after onset_ns ({onset})")
        channel = d.get("channel")
        return cls(str(d["asset"]), kind, onset, end_ns, None if channel is None else str(channel))

    def active_at(self, t_ns: int) -> bool:
        """Whether the fault is present at event time ``t_ns``."""
        return t_ns >= self.onset_ns and (self.end_ns is None or t_ns < self.end_ns)


@dataclass(frozen=True, slots=True)
class ProductionSpec:
    """Settings of the optional production model (see the module docstring)."""

    cycle_time_s: float = 2.0
    speed: tuple[float, float] = (1.05, 1.25)
    scrap_rate: float = 0.03
    idle_per_hour: float = 30.0
    idle_s: tuple[float, float] = (3.0, 10.0)
    # (start, duration) in seconds from the start of the run
    planned_stops: tuple[tuple[float, float], ...] = ()
    down_on_fault: bool = True
    down_delay_s: float = 2.0
    counter_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.cycle_time_s > 0 or not self.counter_interval_s > 0:
            raise ValueError("cycle_time_s and counter_interval_s must be > 0")
        if not (0 < self.speed[0] <= self.speed[1]) or not (0 <= self.idle_s[0] <= self.idle_s[1]):
            raise ValueError(f"speed {self.speed} and idle_s {self.idle_s} must be ordered "
                             "(low, high) ranges")
        if not 0 <= self.scrap_rate <= 1 or self.idle_per_hour < 0 or self.down_delay_s < 0:
            raise ValueError("scrap_rate must be in [0, 1]; idle_per_hour and down_delay_s must be >= 0")


@dataclass(frozen=True, slots=True)
class _Production:
    """One asset's simulated production: state changes and part completions (ns, absolute)."""

    changes: tuple[tuple[int, str], ...]  # (time, state), first at the start of the run
    parts: tuple[tuple[int, bool], ...]  # (completion time, good)


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One simulated input message, ready to produce to a broker.

    ``stream`` is ``"waveform"`` (binary frame) or ``"reading"`` (JSON);
    ``t_ns`` is its event time. For malformed inputs ``valid`` is False and
    ``label`` names the category (one of :data:`MALFORMED_CATEGORIES`).
    """

    stream: str
    asset: str
    t_ns: int
    payload: bytes
    valid: bool = True
    label: str = ""


# ---------------------------------------------------------------------------
# internals
# ---------------------------------------------------------------------------
def _is_axial(channel: str) -> bool:
    """Axial channels (z) see less of radial faults (bearing, imbalance)."""
    c = channel.lower()
    return c == "z" or c.startswith("ax")


@dataclass(frozen=True, slots=True)
class _AssetModel:
    """Fixed per-asset parameters plus the seeds of its random streams."""

    spec: AssetSpec
    n_frames: int
    n_readings: int
    # (C, 6) coefficients of [sin, cos] at 1x, 2x and gear mesh
    coef: np.ndarray
    omegas: np.ndarray  # (3,) rad/s of 1x, 2x, gear mesh
    sigma: float
    radial: np.ndarray  # (C,) bool
    temp_base: float
    temp_period_s: float
    temp_phase: float
    bpfo_ratio: float
    ring_hz: np.ndarray  # (C,) bearing resonance per channel
    noise_seed: np.random.SeedSequence
    fault_seed: np.random.SeedSequence
    temp_seed: np.random.SeedSequence
    faults: tuple[Fault, ...] = field(default=())


@dataclass(slots=True)
class _Bearing:
    """Precomputed impact schedule of one bearing_wear fault (sample-time seconds)."""

    t_imp: np.ndarray  # impact times (s since start)
    amp: np.ndarray  # impact amplitudes (ramp included)
    gain: np.ndarray  # (C,) channel gains
    ring_w: np.ndarray  # (C,) resonance rad/s
    tau: float
    tail: float


@dataclass(slots=True)
class _FaultState:
    """A fault converted to sample indices, plus any running state."""

    fault: Fault
    n_on: int
    n_end: int  # exclusive; may exceed the run
    ch: int  # channel index, -1 when not single-channel
    t_on: float  # onset, seconds since start
    bearing: _Bearing | None = None
    stuck_value: float = 0.0
    amp: float = 1.0  # the run's fault_amplitude


def _normalise_asset(a: AssetLike, rate: float | None) -> AssetSpec:
    """Copy an asset-like object into an :class:`AssetSpec` (applying a rate override)."""
    channels = tuple(str(c) for c in a.channels)
    if not channels:
        raise ValueError(f"asset {a.id!r} has no channels")
    if len(set(channels)) != len(channels):
        raise ValueError(f"asset {a.id!r} has duplicate channel names {list(channels)}")
    fs = float(a.sample_rate_hz if rate is None else rate)
    if not (math.isfinite(fs) and fs > 0):
        raise ValueError(f"asset {a.id!r}: sample_rate_hz must be a positive number, got {fs!r}")
    rpm = float(a.rpm)
    if not (math.isfinite(rpm) and rpm > 0):
        raise ValueError(f"asset {a.id!r}: rpm must be a positive number, got {rpm!r}")
    return AssetSpec(id=str(a.id), line=str(a.line), channels=channels, sample_rate_hz=fs, rpm=rpm)


def _frame_t0(start_ns: int, k: int, frame_samples: int, rate: float) -> int:
    """Event time of frame ``k``'s first sample."""
    return start_ns + round(k * frame_samples / rate * 1e9)


class PlantSimulator:
    """Seeded plant simulator: waveform frames and temperature readings with labelled faults.

    ``faults`` places the given faults instead of seeded ones (``n_faults`` is
    then ignored); ``production`` adds the production model's readings;
    ``fault_amplitude`` scales every fault's size (bearing impacts, the imbalance's
    added 1x, spike heights, the temperature drift rate; 1 = the sizes above).

    ``assets`` is a sequence of asset-like objects (``id``, ``line``,
    ``channels``, ``sample_rate_hz``, ``rpm``) or an int ``n`` for ``n`` default
    assets ``asset-000`` ... The ground truth (:attr:`faults`) is decided here,
    from ``seed``; :meth:`messages` and :meth:`frames` can be iterated any number
    of times and always give the same data.

    Attributes: ``assets`` (normalised :class:`AssetSpec` list, with the
    effective sample rates), ``faults``, ``n_frames`` and ``n_readings`` (what
    :meth:`messages` yields in total), ``start_ns``, ``end_ns``, ``duration_s``,
    ``seed``. Each asset gets ``floor(duration_s * rate / frame_samples)`` whole
    frames and a reading at every multiple of ``temperature_interval_s`` below
    ``duration_s``.
    """

    def __init__(
        self,
        assets: Sequence[AssetLike] | int,
        *,
        duration_s: float = 60.0,
        start_ns: int = DEFAULT_START_NS,
        frame_samples: int = 1024,
        sample_rate_hz: float | None = None,
        n_faults: int = 3,
        fault_kinds: Sequence[str] = FAULT_KINDS,
        warmup_s: float = 20.0,
        seed: int = 0,
        temperature_interval_s: float = 1.0,
        faults: Sequence[Fault] | None = None,
        production: ProductionSpec | None = None,
        fault_amplitude: float = 1.0,
    ) -> None:
        if isinstance(assets, bool):
            raise TypeError("assets must be a sequence of assets or an int count, not a bool")
        if isinstance(assets, int):
            if assets < 1:
                raise ValueError(f"need at least one asset, got assets={assets}")
            specs = [AssetSpec(id=f"asset-{i:03d}") for i in range(assets)]
        else:
            specs = list(assets)
            if not specs:
                raise ValueError("need at least one asset, got an empty sequence")
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
        if frame_samples < 1:
            raise ValueError(f"frame_samples must be >= 1, got {frame_samples}")
        if not (math.isfinite(temperature_interval_s) and temperature_interval_s > 0):
            raise ValueError(f"temperature_interval_s must be > 0, got {temperature_interval_s!r}")
        if warmup_s < 0:
            raise ValueError(f"warmup_s must be >= 0, got {warmup_s!r}")
        if n_faults < 0:
            raise ValueError(f"n_faults must be >= 0, got {n_faults}")
        kinds = tuple(str(k) for k in fault_kinds)
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; expected a subset of {list(FAULT_KINDS)}")
        if n_faults > 0 and not kinds:
            raise ValueError(f"n_faults={n_faults} but fault_kinds is empty")

        self.assets: list[AssetSpec] = [_normalise_asset(a, sample_rate_hz) for a in specs]
        ids = [a.id for a in self.assets]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"asset ids must be unique; duplicated: {dup}")
        if faults is None and n_faults > len(self.assets):
            raise ValueError(
                f"n_faults={n_faults} but there are only {len(self.assets)} assets: faults go on distinct "
                "assets, so use n_faults <= number of assets"
            )

        self.start_ns = int(start_ns)
        self.duration_s = float(duration_s)
        self.end_ns = self.start_ns + round(self.duration_s * 1e9)
        self.frame_samples = int(frame_samples)
        self.sample_rate_override = None if sample_rate_hz is None else float(sample_rate_hz)
        self.n_faults = int(n_faults)
        self.fault_kinds = kinds
        self.warmup_s = float(warmup_s)
        self.seed = int(seed)
        self.temperature_interval_s = float(temperature_interval_s)
        if not (math.isfinite(fault_amplitude) and fault_amplitude > 0):
            raise ValueError(f"fault_amplitude must be a positive number, got {fault_amplitude!r}")
        self.fault_amplitude = float(fault_amplitude)

        root = np.random.SeedSequence(self.seed)
        fault_ss, *asset_ss = root.spawn(1 + len(self.assets))
        if faults is not None:
            self.faults = self._given_faults(faults)
            self.n_faults = len(self.faults)
        else:
            self.faults = self._place_faults(np.random.Generator(np.random.PCG64(fault_ss)))
        by_asset: dict[str, list[Fault]] = {a.id: [] for a in self.assets}
        for f in self.faults:
            by_asset[f.asset].append(f)
        self._models: list[_AssetModel] = [
            self._make_model(spec, ss, tuple(by_asset[spec.id])) for spec, ss in zip(self.assets, asset_ss)
        ]
        self._model_by_id = {m.spec.id: m for m in self._models}
        self.production = production
        self._production: dict[str, _Production] = {}
        if production is not None:
            # spawned after the others, so enabling it changes no other stream
            prod_ss = root.spawn(len(self.assets))
            for spec, ss in zip(self.assets, prod_ss):
                self._production[spec.id] = self._make_production(spec, by_asset[spec.id], production, ss)
        self.n_frames: int = sum(m.n_frames for m in self._models)
        self.n_readings: int = sum(m.n_readings for m in self._models) + sum(
            len(p.changes) + 2 * self._n_counter_readings() for p in self._production.values())

    # ---- construction -----------------------------------------------------------
    def _given_faults(self, faults: Sequence[Fault]) -> list[Fault]:
        """Check explicitly given faults (instead of seeded placement)."""
        ids = {a.id: a for a in self.assets}
        out = []
        for f in faults:
            if f.asset not in ids:
                raise ValueError(f"fault on unknown asset {f.asset!r}")
            if f.kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {f.kind!r}")
            if not self.start_ns <= f.onset_ns < self.end_ns:
                raise ValueError(f"fault onset {f.onset_ns} is outside the run "
                                 f"[{self.start_ns}, {self.end_ns})")
            if f.kind in ("sensor_stuck", "spike_burst") and f.channel not in ids[f.asset].channels:
                raise ValueError(f"{f.kind} needs a channel of asset {f.asset!r}, got {f.channel!r}")
            out.append(f)
        return sorted(out, key=lambda f: (f.onset_ns, f.asset))

    def _n_counter_readings(self) -> int:
        assert self.production is not None
        return math.ceil(self.duration_s / self.production.counter_interval_s - 1e-9)

    def _make_production(self, spec: AssetSpec, faults: list[Fault], p: ProductionSpec,
                         ss: np.random.SeedSequence) -> _Production:
        """Decide one asset's state timeline and part completions."""
        rng = np.random.Generator(np.random.PCG64(ss))
        start, end = self.start_ns, self.end_ns
        # intervals per state, highest priority first
        planned = [(start + round(a * S), start + round((a + d) * S)) for a, d in p.planned_stops]
        down = [(f.onset_ns + round(p.down_delay_s * S), f.end_ns if f.end_ns is not None else end)
                for f in faults if p.down_on_fault]
        idle = []
        t = start
        while p.idle_per_hour > 0:
            t += round(rng.exponential(3600.0 / p.idle_per_hour) * S)
            if t >= end:
                break
            d = round(rng.uniform(*p.idle_s) * S)
            idle.append((t, t + d))
            t += d
        layers = [("planned_stop", planned), ("down", down), ("idle", idle)]
        cuts = sorted({start, end} | {x for _, ivs in layers for iv in ivs for x in iv if start < x < end})
        changes: list[tuple[int, str]] = []
        for a in cuts[:-1]:
            state = next((name for name, ivs in layers if any(lo <= a < hi for lo, hi in ivs)), "running")
            if not changes or changes[-1][1] != state:
                changes.append((a, state))
        cycle = round(p.cycle_time_s * float(rng.uniform(*p.speed)) * S)
        parts: list[tuple[int, bool]] = []
        bounds = [c[0] for c in changes] + [end]
        for (a, state), b in zip(changes, bounds[1:]):
            if state != "running":
                continue
            k = 1
            while a + k * cycle <= b:
                parts.append((a + k * cycle, bool(rng.uniform() >= p.scrap_rate)))
                k += 1
        return _Production(tuple(changes), tuple(parts))

    def production_truth(self, until_ns: int | None = None) -> dict[str, dict[str, int]]:
        """Per asset: ns in each state and parts completed in ``[start, until)`` (default: the whole run).

        Part counts are what the counters report by ``until`` (the last counter reading before it).
        """
        until = self.end_ns if until_ns is None else until_ns
        out: dict[str, dict[str, int]] = {}
        for aid, prod in self._production.items():
            times = {k: 0 for k in STATE_CODES}
            bounds = [c[0] for c in prod.changes] + [self.end_ns]
            for (a, state), b in zip(prod.changes, bounds[1:]):
                times[state] += max(0, min(b, until) - a)
            last_counter = max((ts for ts in self._counter_times() if ts < until), default=None)
            done = [good for t, good in prod.parts if last_counter is not None and t <= last_counter]
            out[aid] = {f"{k}_ns": v for k, v in times.items()} | {"parts_total": len(done),
                                                                   "parts_good": sum(done)}
        return out

    def _counter_times(self) -> list[int]:
        assert self.production is not None
        return [self.start_ns + round(k * self.production.counter_interval_s * S)
                for k in range(self._n_counter_readings())]

    def _asset_production(self, aid: str) -> Iterator[tuple[int, str, str, float, str]]:
        """One asset's production readings as ``(ts_ns, asset, "reading", value, metric)`` in time order."""
        prod = self._production[aid]
        events: list[tuple[int, str, str, float, str]] = [
            (t, aid, "reading", float(STATE_CODES[state]), "state") for t, state in prod.changes]
        i, total, good = 0, 0, 0
        for ts in self._counter_times():
            while i < len(prod.parts) and prod.parts[i][0] <= ts:
                total += 1
                good += int(prod.parts[i][1])
                i += 1
            events.append((ts, aid, "reading", float(total), "parts_total"))
            events.append((ts, aid, "reading", float(good), "parts_good"))
        events.sort(key=lambda e: (e[0], e[4]))
        yield from events

    def _place_faults(self, rng: np.random.Generator) -> list[Fault]:
        """Decide the ground truth: which asset gets which fault, when."""
        if self.n_faults == 0:
            return []
        lo = self.start_ns + round(self.warmup_s * 1e9)
        hi = self.start_ns + round((self.duration_s - FAULT_TAIL_S) * 1e9)
        if hi < lo:
            raise ValueError(
                "run too short for faults: onsets must fall in [start + warmup_s, start + duration_s - "
                f"{FAULT_TAIL_S:g} s], which needs duration_s >= warmup_s + {FAULT_TAIL_S:g} (got "
                f"duration_s={self.duration_s:g}, warmup_s={self.warmup_s:g}); lengthen the run, shorten the "
                "warmup or use n_faults=0"
            )
        order = rng.permutation(len(self.fault_kinds))
        kinds = [self.fault_kinds[i] for i in order]
        picked = rng.choice(len(self.assets), size=self.n_faults, replace=False)
        faults: list[Fault] = []
        for i, ai in enumerate(picked):
            asset = self.assets[int(ai)]
            kind = kinds[i % len(kinds)]
            onset = int(rng.integers(lo, hi, endpoint=True))
            end: int | None = None
            channel: str | None = None
            if kind in ("sensor_stuck", "spike_burst"):
                channel = asset.channels[int(rng.integers(len(asset.channels)))]
                d_lo, d_hi = STUCK_DURATION_S if kind == "sensor_stuck" else SPIKE_DURATION_S
                end = onset + round(float(rng.uniform(d_lo, d_hi)) * 1e9)
            faults.append(Fault(asset.id, kind, onset, end, channel))
        faults.sort(key=lambda f: (f.onset_ns, f.asset))
        return faults

    def _make_model(self, spec: AssetSpec, ss: np.random.SeedSequence,
                    faults: tuple[Fault, ...]) -> _AssetModel:
        """Draw one asset's fixed parameters and seed its random streams."""
        param_ss, noise_ss, fault_ss, temp_ss = ss.spawn(4)
        rng = np.random.Generator(np.random.PCG64(param_ss))
        c = len(spec.channels)
        fs = spec.sample_rate_hz
        f1 = spec.rpm / 60.0
        teeth = int(rng.integers(GEAR_TEETH[0], GEAR_TEETH[1], endpoint=True))
        freqs = np.array([f1, 2.0 * f1, teeth * f1])
        spread = rng.uniform(1 - AMP_SPREAD, 1 + AMP_SPREAD, (c, 3))
        amps = np.array([AMP_1X, AMP_2X, AMP_GEAR])[None, :] * spread
        amps = np.where(freqs[None, :] < 0.5 * fs, amps, 0.0)  # nothing above Nyquist
        phases = rng.uniform(0.0, 2.0 * np.pi, (c, 3))
        # a sin(w t + p) = a cos(p) sin(w t) + a sin(p) cos(w t)
        coef = np.empty((c, 6))
        coef[:, 0::2] = amps * np.cos(phases)
        coef[:, 1::2] = amps * np.sin(phases)
        sigma = NOISE_SIGMA * float(rng.uniform(1 - AMP_SPREAD, 1 + AMP_SPREAD))
        temp_base = float(rng.uniform(*TEMP_BASE_C))
        temp_period = float(rng.uniform(*TEMP_WANDER_PERIOD_S))
        temp_phase = float(rng.uniform(0.0, 2.0 * np.pi))
        bpfo = float(rng.uniform(*BPFO_RATIO))
        ring = np.minimum(rng.uniform(*BEARING_RING_HZ, c), 0.45 * fs)
        n_frames = math.floor(self.duration_s * fs / self.frame_samples + 1e-9)
        n_readings = math.ceil(self.duration_s / self.temperature_interval_s - 1e-9)
        return _AssetModel(
            spec=spec, n_frames=n_frames, n_readings=n_readings, coef=coef, omegas=2.0 * np.pi * freqs,
            sigma=sigma, radial=np.array([not _is_axial(ch) for ch in spec.channels]), temp_base=temp_base,
            temp_period_s=temp_period, temp_phase=temp_phase, bpfo_ratio=bpfo, ring_hz=ring,
            noise_seed=noise_ss, fault_seed=fault_ss, temp_seed=temp_ss, faults=faults,
        )

    # ---- per-asset generators ---------------------------------------------------------
    def _fault_states(self, m: _AssetModel) -> list[_FaultState]:
        """Convert an asset's faults to sample indices and precompute bearing impacts."""
        fs = m.spec.sample_rate_hz
        total = m.n_frames * self.frame_samples
        rng = np.random.Generator(np.random.PCG64(m.fault_seed))
        out: list[_FaultState] = []
        for f in m.faults:
            t_on = (f.onset_ns - self.start_ns) / 1e9
            n_on = max(0, math.ceil(t_on * fs - 1e-6))
            n_end = total if f.end_ns is None else math.ceil((f.end_ns - self.start_ns) / 1e9 * fs - 1e-6)
            known = f.channel is not None and f.channel in m.spec.channels
            ch = m.spec.channels.index(f.channel) if known else -1
            st = _FaultState(fault=f, n_on=n_on, n_end=n_end, ch=ch, t_on=t_on, amp=self.fault_amplitude)
            if f.kind == "bearing_wear":
                t_stop = min(total, n_end) / fs
                period = 1.0 / (m.bpfo_ratio * m.spec.rpm / 60.0)
                n_imp = max(0, int(1.1 * (t_stop - t_on) / period) + 10)
                gaps = period * (1.0 + BEARING_SLIP * rng.standard_normal(n_imp))
                t_imp = t_on + np.cumsum(gaps) - gaps[0] * rng.uniform()
                t_imp = t_imp[(t_imp >= t_on) & (t_imp < t_stop)]
                ramp = np.clip((t_imp - t_on) / BEARING_RAMP_S, 0.0, 1.0)
                # slow machines have fewer impacts per second: make each one bigger (up to 25 %) so the
                # rms still rises by ~30 %+; fast machines keep BEARING_AMP (their rms rises more anyway)
                boost = min(BEARING_LOW_RATE_BOOST, max(1.0, math.sqrt(BEARING_REF_RATE_HZ * period)))
                amp = BEARING_AMP * self.fault_amplitude * boost * ramp * rng.uniform(0.6, 1.4, t_imp.size)
                tau = max(BEARING_TAU_S, 2.0 / fs)
                gain = np.where(m.radial, 1.0, BEARING_AXIAL_GAIN)
                st.bearing = _Bearing(t_imp=t_imp, amp=amp, gain=gain, ring_w=2.0 * np.pi * m.ring_hz,
                                      tau=tau, tail=12.0 * tau)
            out.append(st)
        return out

    def _asset_frames(self, m: _AssetModel) -> Iterator[tuple[int, str, str, int, np.ndarray]]:
        """One asset's frames as ``(t0_ns, asset, "waveform", seq, samples)``."""
        spec = m.spec
        n = self.frame_samples
        fs = spec.sample_rate_hz
        c = len(spec.channels)
        rng = np.random.Generator(np.random.PCG64(m.noise_seed))
        states = self._fault_states(m)
        base_idx = np.arange(n, dtype=np.int64)
        # sin/cos of each tone over one frame's offsets; a frame starting at t0 is the same
        # tones with phases advanced by omega * t0 (exact per frame, so no drift accumulates)
        wt = m.omegas[:, None] * (base_idx / fs)[None, :]
        basis = np.empty((6, n))
        basis[0::2] = np.sin(wt)
        basis[1::2] = np.cos(wt)
        a_s = m.coef[:, 0::2]  # a cos(p)
        a_c = m.coef[:, 1::2]  # a sin(p)
        coef = np.empty_like(m.coef)
        for k in range(m.n_frames):
            lo_n = k * n
            hi_n = lo_n + n
            theta = m.omegas * (lo_n / fs)
            cos_t, sin_t = np.cos(theta), np.sin(theta)
            coef[:, 0::2] = a_s * cos_t - a_c * sin_t
            coef[:, 1::2] = a_c * cos_t + a_s * sin_t
            x = coef @ basis
            x += m.sigma * rng.standard_normal((c, n))
            self._condition(m, lo_n, x)
            for st in states:
                if st.n_on >= hi_n or st.n_end <= lo_n:
                    if st.fault.kind == "sensor_stuck" and st.ch >= 0 and lo_n <= st.n_on - 1 < hi_n:
                        st.stuck_value = float(x[st.ch, st.n_on - 1 - lo_n])
                    continue
                a = max(st.n_on, lo_n) - lo_n
                b = min(st.n_end, hi_n) - lo_n
                self._apply_fault(st, m, x, lo_n, coef, basis, a, b, rng)
            yield _frame_t0(self.start_ns, k, n, fs), spec.id, "waveform", k, x.astype(np.float32)

    def _condition(self, m: _AssetModel, lo_n: int, x: np.ndarray) -> None:
        """Operating conditions applied to a frame's healthy signal before its faults (in place; from absolute
        sample ``lo_n``). None here; a scenario (:mod:`aiotstream.sim.realistic`) adds load and sensors."""

    @staticmethod
    def _apply_fault(st: _FaultState, m: _AssetModel, x: np.ndarray, lo_n: int, coef: np.ndarray,
                     basis: np.ndarray, a: int, b: int, rng: np.random.Generator) -> None:
        """Add fault ``st`` to frame samples ``x[:, a:b]``.

        The frame starts at absolute sample ``lo_n``; ``coef @ basis`` is its healthy tonal part.
        """
        kind = st.fault.kind
        fs = m.spec.sample_rate_hz
        if kind == "imbalance":
            t = (lo_n + np.arange(a, b)) / fs
            ramp = np.clip((t - st.t_on) / IMBALANCE_RAMP_S, 0.0, 1.0)
            one_x = coef[:, 0:1] * basis[0, a:b] + coef[:, 1:2] * basis[1, a:b]
            x[m.radial, a:b] += (IMBALANCE_FACTOR - 1.0) * st.amp * ramp[None, :] * one_x[m.radial]
        elif kind == "bearing_wear":
            bw = st.bearing
            assert bw is not None
            t_a = (lo_n + a) / fs
            t_b = (lo_n + b - 1) / fs
            i0 = int(np.searchsorted(bw.t_imp, t_a - bw.tail, side="left"))
            i1 = int(np.searchsorted(bw.t_imp, t_b, side="right"))
            if i1 <= i0:
                return
            t_imp = bw.t_imp[i0:i1]
            n_ring = math.ceil(bw.tail * fs)
            first = np.ceil((t_imp - lo_n / fs) * fs - 1e-9).astype(np.int64)  # first sample at/after impact
            idx = first[:, None] + np.arange(n_ring)[None, :]  # (impacts, ring samples), frame-relative
            keep = (idx >= a) & (idx < b)
            dt = ((lo_n + idx) / fs - t_imp[:, None])[keep]
            env = np.broadcast_to(bw.amp[i0:i1, None], idx.shape)[keep] * np.exp(-dt / bw.tau)
            pos = idx[keep]
            for ci in range(x.shape[0]):
                ring = bw.gain[ci] * env * np.sin(bw.ring_w[ci] * dt)
                x[ci] += np.bincount(pos, weights=ring, minlength=x.shape[1])
        elif kind == "spike_burst":
            if st.ch < 0:
                return
            k = int(rng.poisson(SPIKE_RATE_HZ * (b - a) / fs))
            if k:
                pos = rng.integers(a, b, k)
                size = (rng.uniform(*SPIKE_SIGMAS, k) * st.amp * m.sigma
                        * rng.choice(np.array([-1.0, 1.0]), k))
                x[st.ch, pos] += size
        elif kind == "sensor_stuck":
            if st.ch < 0:
                return
            # the last value before onset: here if the onset falls inside this frame, otherwise
            # it was captured from the previous frame (see _asset_frames)
            if a > 0:
                st.stuck_value = float(x[st.ch, a - 1])
            x[st.ch, a:b] = st.stuck_value
        # temperature_drift does not touch the waveform

    def _asset_readings(self, m: _AssetModel) -> Iterator[tuple[int, str, str, float]]:
        """One asset's temperature readings as ``(ts_ns, asset, "reading", value)``."""
        rng = np.random.Generator(np.random.PCG64(m.temp_seed))
        j = np.arange(m.n_readings)
        t_rel = j * self.temperature_interval_s
        ts = np.array([self.start_ns + round(float(v) * 1e9) for v in t_rel], dtype=np.int64)
        temp = (m.temp_base
                + TEMP_WANDER_C * np.sin(2.0 * np.pi * t_rel / m.temp_period_s + m.temp_phase)
                + TEMP_NOISE_C * rng.standard_normal(m.n_readings))
        for f in m.faults:
            if f.kind == "temperature_drift":
                end = np.iinfo(np.int64).max if f.end_ns is None else f.end_ns
                active = (ts >= f.onset_ns) & (ts < end)
                rate = TEMP_DRIFT_C_PER_S * self.fault_amplitude
                temp = temp + np.where(active, rate * (ts - f.onset_ns) / 1e9, 0.0)
        temp = np.round(temp, 3)
        aid = m.spec.id
        for tsi, v in zip(ts.tolist(), temp.tolist()):
            yield tsi, aid, "reading", v

    def _select(self, asset: str | None) -> list[_AssetModel]:
        if asset is None:
            return self._models
        m = self._model_by_id.get(asset)
        if m is None:
            raise KeyError(f"unknown asset {asset!r}; the simulator has {[a.id for a in self.assets]}")
        return [m]

    # ---- public iteration -----------------------------------------------------------------
    def frames(self, asset: str | None = None) -> Iterator[tuple[str, int, int, np.ndarray]]:
        """Waveform frames, unencoded, as ``(asset_id, seq, t0_ns, samples)`` in event-time order.

        ``samples`` is a fresh ``(channels, frame_samples)`` float32 array.
        Ties are ordered by asset id. ``asset`` restricts to one asset (faster).
        """
        iters = [self._asset_frames(m) for m in self._select(asset)]
        for t0, aid, _stream, seq, x in heapq.merge(*iters, key=lambda e: (e[0], e[1])):
            yield aid, seq, t0, x

    def readings(self, asset: str | None = None) -> Iterator[tuple[str, int, str, float]]:
        """Temperature readings, unencoded, as ``(asset_id, ts_ns, metric, value)`` in event-time order."""
        iters = [self._asset_readings(m) for m in self._select(asset)]
        for ts, aid, _stream, v in heapq.merge(*iters, key=lambda e: (e[0], e[1])):
            yield aid, ts, TEMPERATURE_METRIC, v

    def messages(self) -> Iterator[SimMessage]:
        """Every frame and reading, encoded, merged in event-time order.

        Equal event times are ordered by asset id, then stream (``"reading"``
        before ``"waveform"``). Yields ``n_frames + n_readings`` messages.
        """
        iters: list[Iterable[tuple[Any, ...]]] = []
        for m in self._models:
            iters.append(self._asset_frames(m))
            iters.append(self._asset_readings(m))
            if m.spec.id in self._production:
                iters.append(self._asset_production(m.spec.id))
        for ev in heapq.merge(*iters, key=lambda e: (e[0], e[1], e[2])):
            if ev[2] == "waveform":
                t0, aid, _s, seq, x = ev
                rate = self._model_by_id[aid].spec.sample_rate_hz
                yield SimMessage("waveform", aid, t0, encode_frame(aid, seq, t0, rate, x))
            else:
                ts, aid, _s, v = ev[:4]
                metric = ev[4] if len(ev) > 4 else TEMPERATURE_METRIC
                yield SimMessage("reading", aid, ts, encode_reading(aid, ts, metric, v))

    # ---- ground truth and files -------------------------------------------------------------
    def truth_dict(self) -> dict[str, Any]:
        """The ground truth and run parameters as JSON-friendly data (``amplitude``: only when the faults
        are not at their full size)."""
        d = {
            "version": 1,
            "seed": self.seed,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "frame_samples": self.frame_samples,
            "temperature_interval_s": self.temperature_interval_s,
            "assets": [a.to_dict() for a in self.assets],
            "faults": [f.to_dict() for f in self.faults],
            "counts": {"frames": self.n_frames, "readings": self.n_readings,
                       "messages": self.n_frames + self.n_readings, "faults": len(self.faults)},
        }
        if self.fault_amplitude != 1.0:
            d["amplitude"] = self.fault_amplitude
        return d

    def write_truth(self, path: str | Path) -> Path:
        """Write :meth:`truth_dict` as indented JSON to ``path``; return the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.truth_dict(), indent=2) + "\n", encoding="utf-8")
        return p

    def write_files(self, directory: str | Path, partitions: int = 0,
                    partition_of: Callable[[str], int] | None = None,
                    messages: Iterable[SimMessage] | None = None) -> dict[str, int]:
        """Write ``waveforms.bin``, ``readings.jsonl`` and ``truth.json`` into ``directory``.

        ``waveforms.bin`` is every frame (event-time order) as a 4-byte
        little-endian length followed by the encoded frame; ``readings.jsonl``
        one JSON reading per line. ``partitions=P`` instead writes
        ``waveforms-part<k>.bin`` and ``readings-part<k>.jsonl`` for each
        partition ``k`` of ``P``, each asset in its
        :func:`~aiotstream.routing.partition_for` (so a cluster replays each
        asset on the process that owns it), or in ``partition_of(asset)``.
        Returns the counts (frames, readings, faults) and the byte sizes of
        the data files. ``messages``: :meth:`messages` passed through something (a progress bar).
        """
        from aiotstream.routing import partition_for

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        frames = readings = wave_bytes = read_bytes = 0
        names = ([("waveforms.bin", "readings.jsonl")] if partitions <= 0 else
                 [(f"waveforms-part{k:02d}.bin", f"readings-part{k:02d}.jsonl") for k in range(partitions)])
        part = partition_of or ((lambda a: partition_for(a, partitions)) if partitions > 0 else (lambda a: 0))
        files = [(open(d / w, "wb"), open(d / r, "wb")) for w, r in names]  # noqa: SIM115
        try:
            for msg in self.messages() if messages is None else messages:
                wf, rf = files[part(msg.asset)]
                if msg.stream == "waveform":
                    wf.write(_LEN_PREFIX.pack(len(msg.payload)))
                    wf.write(msg.payload)
                    frames += 1
                    wave_bytes += 4 + len(msg.payload)
                else:
                    rf.write(msg.payload + b"\n")
                    readings += 1
                    read_bytes += len(msg.payload) + 1
        finally:
            for wf, rf in files:
                wf.close()
                rf.close()
        self.write_truth(d / "truth.json")
        return {"frames": frames, "readings": readings, "faults": len(self.faults),
                "waveform_bytes": wave_bytes, "reading_bytes": read_bytes}


def read_waveform_file(path: str | Path) -> Iterator[bytes]:
    """Iterate the encoded frames of a length-prefixed ``waveforms.bin``.

    Raises ValueError if the file ends inside a length prefix or a frame.
    """
    data = Path(path).read_bytes()
    off = 0
    while off < len(data):
        if off + 4 > len(data):
            raise ValueError(f"{path}: truncated length prefix at byte {off}")
        (size,) = _LEN_PREFIX.unpack_from(data, off)
        off += 4
        if off + size > len(data):
            raise ValueError(f"{path}: frame at byte {off - 4} declares {size} bytes, only "
                             f"{len(data) - off} left")
        yield data[off:off + size]
        off += size


# ---------------------------------------------------------------------------
# malformed inputs
# ---------------------------------------------------------------------------
_JSON_VARIANTS = ("broken_json", "missing_field", "non_numeric_value", "nan_string_value")


def _valid_frame(rng: np.random.Generator, asset: str, t0_ns: int, seq: int) -> tuple[bytes, int]:
    """A small valid float32 frame (3 channels); returns bytes and the sample count per channel."""
    n = int(rng.integers(16, 129))
    x = (0.3 * rng.standard_normal((3, n))).astype(np.float32)
    return encode_frame(asset, seq, t0_ns, 10_000.0, x), n


def malformed_messages(n: int, *, assets: Sequence[str], start_ns: int, seed: int) -> list[SimMessage]:
    """``n`` malformed inputs (``valid=False``), cycling through :data:`MALFORMED_CATEGORIES`.

    ``label`` holds the category; ``stream`` is the topic kind it would arrive
    on (``"waveform"`` for binary, ``"reading"`` for JSON). Categories:

    * ``random_bytes``: 0-200 random bytes (never starting with the frame magic);
    * ``truncated_frame``: a valid frame cut short;
    * ``wrong_length``: the header's n_samples says more or fewer samples than present;
    * ``non_finite_samples``: NaN or Inf patched into the float32 samples;
    * ``unknown_asset``: a valid frame for an asset id not in ``assets``;
    * ``future_timestamp``: a valid frame with t0 in the year 2100;
    * ``malformed_json``: a reading that is broken JSON, lacks a field, has a
      non-numeric value, or has ``"NaN"`` as a string value (in turn).

    >>> [m.label for m in malformed_messages(8, assets=["a"], start_ns=0, seed=1)][-2:]
    ['malformed_json', 'random_bytes']
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    names = [str(a) for a in assets]
    if not names:
        raise ValueError("assets must name at least one asset")
    known = set(names)
    rng = np.random.default_rng(seed)
    out: list[SimMessage] = []
    n_json = 0
    n_unknown = 0
    for i in range(n):
        cat = MALFORMED_CATEGORIES[i % len(MALFORMED_CATEGORIES)]
        asset = names[int(rng.integers(len(names)))]
        t_ns = int(start_ns) + i * 100_000_000 + int(rng.integers(0, 100_000_000))
        seq = int(rng.integers(0, 1_000_000))
        if cat == "random_bytes":
            raw = rng.bytes(int(rng.integers(0, 201)))
            if raw[:4] == b"AIOW":
                raw = b"\x00" + raw[1:]
            out.append(SimMessage("waveform", asset, t_ns, raw, False, cat))
        elif cat == "truncated_frame":
            raw, _ = _valid_frame(rng, asset, t_ns, seq)
            head = _FRAME_HEADER + len(asset.encode())
            # half cut inside the header (keeping the magic) or asset id, half inside the samples
            cut = int(rng.integers(4, head)) if rng.uniform() < 0.5 else int(rng.integers(head, len(raw)))
            out.append(SimMessage("waveform", asset, t_ns, raw[:cut], False, cat))
        elif cat == "wrong_length":
            raw, ns = _valid_frame(rng, asset, t_ns, seq)
            delta = int(rng.integers(1, 9)) * (1 if rng.uniform() < 0.5 else -1)
            declared = max(1, ns + delta) if delta < 0 else ns + delta
            buf = bytearray(raw)
            struct.pack_into("<I", buf, _N_SAMPLES_OFFSET, declared)
            out.append(SimMessage("waveform", asset, t_ns, bytes(buf), False, cat))
        elif cat == "non_finite_samples":
            raw, ns = _valid_frame(rng, asset, t_ns, seq)
            buf = bytearray(raw)
            base = _FRAME_HEADER + len(asset.encode())
            bad = [float("nan"), float("inf"), float("-inf")]
            for idx in rng.choice(3 * ns, size=int(rng.integers(1, 4)), replace=False):
                struct.pack_into("<f", buf, base + 4 * int(idx), bad[int(rng.integers(3))])
            out.append(SimMessage("waveform", asset, t_ns, bytes(buf), False, cat))
        elif cat == "unknown_asset":
            while True:
                ghost = f"ghost-{n_unknown:03d}"
                n_unknown += 1
                if ghost not in known:
                    break
            raw, _ = _valid_frame(rng, ghost, t_ns, seq)
            out.append(SimMessage("waveform", ghost, t_ns, raw, False, cat))
        elif cat == "future_timestamp":
            t_future = YEAR_2100_NS + int(rng.integers(0, 86_400)) * 1_000_000_000
            raw, _ = _valid_frame(rng, asset, t_future, seq)
            out.append(SimMessage("waveform", asset, t_future, raw, False, cat))
        else:  # malformed_json
            variant = _JSON_VARIANTS[n_json % len(_JSON_VARIANTS)]
            n_json += 1
            value = round(float(rng.uniform(40.0, 55.0)), 3)
            good = encode_reading(asset, t_ns, TEMPERATURE_METRIC, value)
            if variant == "broken_json":
                raw = good[: int(rng.integers(1, len(good)))]  # any proper prefix of an object is invalid
            else:
                obj = orjson.loads(good)
                if variant == "missing_field":
                    del obj[("asset", "ts", "metric", "value")[int(rng.integers(4))]]
                elif variant == "non_numeric_value":
                    obj["value"] = "hot"
                else:
                    obj["value"] = "NaN"
                raw = orjson.dumps(obj)
            out.append(SimMessage("reading", asset, t_ns, raw, False, cat))
    return out
