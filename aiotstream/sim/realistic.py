"""The ``realistic`` plant scenario: the ``easy`` plant (:mod:`aiotstream.sim.plant`) under changing operating
conditions, with sensor trouble and maintenance, and faults at a chosen size.

``easy`` is :class:`~aiotstream.sim.plant.PlantSimulator` as it is: stationary noise plus injected faults.
:class:`RealisticPlantSimulator` keeps its signals, faults and ground truth and adds, per asset (all seeded,
see :class:`RealisticSpec` for every number):

* **load** ``L(t) = level(t) * (1 + a_d sin(2 pi t / day_s + p_d) + a_w sin(2 pi t / (7 day_s) + p_w))``:
  a diurnal and a weekly cycle (one plant-wide phase each) times the asset's **load regime** ``level``, which
  switches between ``regimes`` (a Poisson process, mean dwell ``regime_dwell_s``) with a linear ramp of
  ``regime_ramp_s``. Vibration (tones and noise) scales by ``sqrt(L)``; temperature rises by
  ``temp_per_load_c * (L - 0.85)`` plus an ambient diurnal swing of ``ambient_c``. ``t`` is time since the
  start of the run; ``day_s`` can be compressed (the cycles keep their shape);
* **slow sensor drift** (a fraction of the assets): one vibration channel's gain drifts linearly by
  ``drift_gain_per_day`` per day and the temperature sensor's offset by ``drift_temp_c_per_day`` per day,
  from the start of the run (until ``drift_until_s``, when set: ageing that settles at a new normal; a run can
  start ``drift_offset_s`` into the drift: an aged plant);
* **noise bursts**: broadband noise of ``burst_sigmas`` x the channel's noise on one channel for
  ``burst_s`` (electrical interference, not a machine fault);
* **dropouts**: no frames and no readings (of any metric) for ``dropout_s`` (a gateway or network gap);
* **maintenance resets** (a fraction of the assets, one each): no data for ``maintenance_s`` (the machine is
  stopped), then a level shift that stays: the vibration gain is multiplied by a factor of
  ``reset_gain`` (or its inverse) and the temperature moves by ``reset_temp_c``. Not a fault. The simulator
  also sends the maintenance feedback message the flow understands (``aiotstream.feedback/1``, type
  ``maintenance``, for the asset, ``[start, end)``, ``reset: true``, at ``ts = start``), so the flow
  suppresses alerts during the window and its detectors re-baseline at its end (the new normal);
* **faults** as in ``easy`` (kinds, placement, ground truth) with their size scaled by ``amplitude``
  (0.1-1 of the easy sizes; sensor_stuck has no size: the stuck-at sensor fault).

No nuisance (burst, dropout, maintenance) starts in the first ``warmup_s`` or within ``guard_s`` of a fault on
the same asset (a fault without an end keeps its asset free of them until the end of the run), so a fault is
never hidden in a gap. Frames keep their sequence numbers across a gap (the gap is visible as missing
``seq``). The ground truth (:meth:`RealisticPlantSimulator.truth_dict`) is ``easy``'s (``faults``, same
fields) plus ``scenario``, ``amplitude``, the ``spec`` and ``events``: every non-fault event (``kind`` one of
:data:`EVENT_KINDS`, ``asset``, ``onset_ns``, ``end_ns`` (None: until the end), ``channel`` and ``detail``).

Randomness: everything ``easy`` draws is drawn the same way (so the same seed gives the same faults); the
scenario's own draws come from ``SeedSequence([seed, 0x5EA1])``, one child for the plant and one per asset.

>>> sim = RealisticPlantSimulator(2, duration_s=30.0, n_faults=0, seed=1, frame_samples=2_500,
...                               spec=RealisticSpec(day_s=10.0))
>>> sim.truth_dict()["scenario"], sim.n_frames == len(list(sim.frames()))
('realistic', True)
"""
from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import orjson

from aiotstream.sim.plant import (
    AssetLike,
    PlantSimulator,
    SimMessage,
    _AssetModel,
    _frame_t0,
    _is_axial,
)
from aiotstream.units import S

__all__ = ["EVENT_KINDS", "SCENARIOS", "Event", "RealisticPlantSimulator", "RealisticSpec", "make_simulator"]

SCENARIOS: tuple[str, ...] = ("easy", "realistic")
EVENT_KINDS: tuple[str, ...] = ("maintenance_reset", "noise_burst", "dropout", "sensor_drift",
                                "regime_change")
"""Non-fault events of the ground truth (``events``); only ``faults`` are what a detector should find."""

LOAD_REF = 0.85  # the load at which temperature has its easy base value
FEEDBACK_SCHEMA = "aiotstream.feedback/1"


@dataclass(frozen=True, slots=True)
class RealisticSpec:
    """The numbers of the realistic scenario (module docstring); times in seconds of event time."""

    day_s: float = 86_400.0
    week_days: int = 7
    diurnal_amp: float = 0.15
    weekly_amp: float = 0.05
    regimes: tuple[float, ...] = (0.7, 0.85, 1.0)
    regime_dwell_s: float = 600.0
    regime_ramp_s: float = 30.0
    temp_per_load_c: float = 8.0
    ambient_c: float = 2.0
    drift_fraction: float = 0.3
    drift_gain_per_day: tuple[float, float] = (0.1, 0.3)
    drift_temp_c_per_day: tuple[float, float] = (0.5, 2.0)
    drift_until_s: float | None = None  # ageing that settles: the drift holds its value from then on
    drift_offset_s: float = 0.0  # the sensors have drifted this long before the run starts (an aged plant)
    bursts_per_hour: float = 6.0
    burst_s: tuple[float, float] = (1.0, 5.0)
    burst_sigmas: tuple[float, float] = (1.5, 3.0)
    dropouts_per_hour: float = 4.0
    dropout_s: tuple[float, float] = (2.0, 20.0)
    maintenance_fraction: float = 0.2
    maintenance_s: tuple[float, float] = (20.0, 60.0)
    reset_gain: tuple[float, float] = (1.15, 1.4)
    reset_temp_c: tuple[float, float] = (0.5, 2.5)
    guard_s: float = 30.0

    def __post_init__(self) -> None:
        if not (self.day_s > 0 and self.week_days >= 1 and self.regime_dwell_s > 0
                and self.regime_ramp_s >= 0):
            raise ValueError("day_s, regime_dwell_s must be > 0, week_days >= 1, regime_ramp_s >= 0")
        if not self.regimes or min(self.regimes) <= 0:
            raise ValueError(f"regimes must be positive load levels, got {self.regimes}")
        for name in ("drift_fraction", "maintenance_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if not self.drift_offset_s >= 0:
            raise ValueError(f"drift_offset_s must be >= 0 seconds, got {self.drift_offset_s}")
        if self.drift_until_s is not None and not self.drift_until_s >= 0:
            raise ValueError(f"drift_until_s must be >= 0 seconds (or None: no end), got "
                             f"{self.drift_until_s}")
        if self.bursts_per_hour < 0 or self.dropouts_per_hour < 0:
            raise ValueError("bursts_per_hour and dropouts_per_hour must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class Event:
    """One non-fault event of the ground truth (``kind`` in :data:`EVENT_KINDS`)."""

    asset: str
    kind: str
    onset_ns: int
    end_ns: int | None
    channel: str | None = None
    detail: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, "kind": self.kind, "onset_ns": self.onset_ns, "end_ns": self.end_ns,
                "channel": self.channel, "detail": dict(self.detail)}


@dataclass(slots=True)
class _Conditions:
    """One asset's operating conditions, in seconds since the start of the run."""

    regime_t: np.ndarray  # breakpoints of the regime level (np.interp)
    regime_v: np.ndarray
    drift_ch: int  # -1: no sensor drift
    drift_gain: float  # per day
    drift_temp: float  # degC per day
    resets: list[tuple[float, float, float]]  # (end of maintenance s, gain factor, temperature step)
    bursts: list[tuple[float, float, int, float]]  # (start s, end s, channel, extra noise sigma)
    gaps: list[tuple[int, int]]  # [start, end) ns without data (dropouts and maintenance)
    noise_seed: np.random.SeedSequence


class RealisticPlantSimulator(PlantSimulator):
    """The ``realistic`` scenario (module docstring). Takes :class:`PlantSimulator`'s arguments plus
    ``amplitude`` (fault size, 0 < amplitude; the issue's range is 0.1-1) and ``spec``."""

    scenario = "realistic"

    def __init__(self, assets: Sequence[AssetLike] | int, *, amplitude: float = 0.25,
                 spec: RealisticSpec | None = None, **kwargs: Any) -> None:
        super().__init__(assets, fault_amplitude=amplitude, **kwargs)
        self.spec = spec or RealisticSpec()
        plant_ss, *asset_ss = np.random.SeedSequence([self.seed, 0x5EA1]).spawn(1 + len(self.assets))
        prng = np.random.Generator(np.random.PCG64(plant_ss))
        self.phase_day = float(prng.uniform(0, 2 * np.pi))
        self.phase_week = float(prng.uniform(0, 2 * np.pi))
        self.events: list[Event] = []
        self._cond: dict[str, _Conditions] = {}
        for spec_a, ss in zip(self.assets, asset_ss):
            self._cond[spec_a.id] = self._plan(spec_a.id, ss)
        self.events.sort(key=lambda e: (e.onset_ns, e.asset, e.kind))
        self.feedback = self._feedback_messages()
        # what the gaps leave
        n_frames = n_readings = 0
        for m in self._models:
            t0 = self._frame_times(m)
            n_frames += int(np.count_nonzero(~self._in_gaps(m.spec.id, t0)))
            n_readings += int(np.count_nonzero(~self._in_gaps(m.spec.id, self._reading_times(m))))
        self.n_frames = n_frames
        self.n_readings = n_readings + sum(sum(1 for _ in self._asset_production(a))
                                           for a in self._production)

    # ---- planning ------------------------------------------------------------------------------
    def _plan(self, aid: str, ss: np.random.SeedSequence) -> _Conditions:
        sp = self.spec
        plan_ss, noise_ss = ss.spawn(2)
        rng = np.random.Generator(np.random.PCG64(plan_ss))
        dur = self.duration_s
        spec_a = next(a for a in self.assets if a.id == aid)
        # regimes: start in a random one, switch as a Poisson process
        level = float(rng.choice(sp.regimes))
        ts, vs = [0.0], [level]
        t = 0.0
        while len(sp.regimes) > 1:
            t += float(rng.exponential(sp.regime_dwell_s))
            if t >= dur:
                break
            new = float(rng.choice([r for r in sp.regimes if r != level]))
            ts += [t, t + sp.regime_ramp_s]
            vs += [level, new]
            self.events.append(Event(aid, "regime_change", self._ns(t), self._ns(t + sp.regime_ramp_s), None,
                                     (("from", level), ("to", new))))
            level = new
        # busy: faults (and a guard around them) where no nuisance may start
        busy: list[tuple[float, float]] = [(0.0, self.warmup_s)]
        for f in self.faults:
            if f.asset == aid:
                a = (f.onset_ns - self.start_ns) / S
                b = dur if f.end_ns is None else (f.end_ns - self.start_ns) / S
                busy.append((a - sp.guard_s, b + sp.guard_s))

        def free(a: float, b: float) -> bool:
            return b <= dur and not any(a < hi and lo < b for lo, hi in busy)

        # sensor drift
        drift_ch, drift_gain, drift_temp = -1, 0.0, 0.0
        if rng.uniform() < sp.drift_fraction:
            radial = [i for i, c in enumerate(spec_a.channels) if not _is_axial(c)] or [0]
            drift_ch = int(rng.choice(radial))
            drift_gain = float(rng.uniform(*sp.drift_gain_per_day)) * float(rng.choice([-1.0, 1.0]))
            drift_temp = float(rng.uniform(*sp.drift_temp_c_per_day)) * float(rng.choice([-1.0, 1.0]))
            off = sp.drift_offset_s  # the drift began that long before the run
            until = None if sp.drift_until_s is None else self._ns(min(sp.drift_until_s - off, dur))
            self.events.append(Event(aid, "sensor_drift", self._ns(-off), until, spec_a.channels[drift_ch],
                                     (("gain_per_day", drift_gain), ("temp_c_per_day", drift_temp))))
        # maintenance reset
        resets: list[tuple[float, float, float]] = []
        gaps: list[tuple[float, float]] = []
        if rng.uniform() < sp.maintenance_fraction:
            length = float(rng.uniform(*sp.maintenance_s))
            for _ in range(20):
                a = float(rng.uniform(self.warmup_s, max(self.warmup_s, dur - length - sp.guard_s)))
                if free(a, a + length + sp.guard_s):
                    gain = float(rng.uniform(*sp.reset_gain))
                    gain = gain if rng.uniform() < 0.5 else 1.0 / gain
                    step = float(rng.uniform(*sp.reset_temp_c)) * float(rng.choice([-1.0, 1.0]))
                    resets.append((a + length, gain, step))
                    gaps.append((a, a + length))
                    busy.append((a, a + length + sp.guard_s))
                    self.events.append(Event(aid, "maintenance_reset", self._ns(a), self._ns(a + length),
                                             None, (("gain", gain), ("temp_step_c", step))))
                    break
        # dropouts and noise bursts
        bursts: list[tuple[float, float, int, float]] = []
        for kind, rate, span in (("dropout", sp.dropouts_per_hour, sp.dropout_s),
                                 ("noise_burst", sp.bursts_per_hour, sp.burst_s)):
            k = int(rng.poisson(rate * dur / 3600.0))
            for _ in range(k):
                a = float(rng.uniform(0, dur))
                b = a + float(rng.uniform(*span))
                ch = int(rng.integers(len(spec_a.channels)))
                size = float(rng.uniform(*sp.burst_sigmas))
                if not free(a, b):
                    continue
                busy.append((a - 1.0, b + 1.0))
                if kind == "dropout":
                    gaps.append((a, b))
                    self.events.append(Event(aid, kind, self._ns(a), self._ns(b)))
                else:
                    bursts.append((a, b, ch, size))
                    self.events.append(Event(aid, kind, self._ns(a), self._ns(b), spec_a.channels[ch],
                                             (("sigmas", size),)))
        return _Conditions(np.array(ts), np.array(vs), drift_ch, drift_gain, drift_temp, sorted(resets),
                           sorted(bursts), sorted((self._ns(a), self._ns(b)) for a, b in gaps), noise_ss)

    def _ns(self, t_s: float) -> int:
        return self.start_ns + round(t_s * S)

    def _feedback_messages(self) -> list[SimMessage]:
        out = []
        for i, e in enumerate(e for e in self.events if e.kind == "maintenance_reset"):
            body = {"schema": FEEDBACK_SCHEMA, "type": "maintenance", "ts": e.onset_ns, "asset": e.asset,
                    "start": e.onset_ns, "end": e.end_ns, "window_id": f"sim-maintenance-{i}",
                    "reset": True, "by": "simulator", "note": "planned maintenance (realistic scenario)"}
            out.append(SimMessage("feedback", e.asset, e.onset_ns, orjson.dumps(body)))
        return out

    # ---- conditions as functions of time -----------------------------------------------------------
    def load(self, aid: str, t_s: np.ndarray) -> np.ndarray:
        """The asset's load ``L(t)`` at ``t_s`` seconds since the start (module docstring)."""
        sp, c = self.spec, self._cond[aid]
        level = np.interp(t_s, c.regime_t, c.regime_v)
        cyc = (1.0 + sp.diurnal_amp * np.sin(2 * np.pi * t_s / sp.day_s + self.phase_day)
               + sp.weekly_amp * np.sin(2 * np.pi * t_s / (sp.week_days * sp.day_s) + self.phase_week))
        return level * cyc

    def _drift_t(self, t_s: np.ndarray) -> np.ndarray:
        """Seconds of drift so far at ``t_s``: ``drift_offset_s`` + ``t_s``, at most ``drift_until_s``."""
        sp = self.spec
        t = t_s + sp.drift_offset_s if sp.drift_offset_s else t_s
        return t if sp.drift_until_s is None else np.minimum(t, sp.drift_until_s)

    def vibration_gain(self, aid: str, t_s: np.ndarray) -> np.ndarray:
        """The gain of each channel at ``t_s``: shape (channels, len(t_s)); load, drift and resets."""
        c = self._cond[aid]
        n_ch = len(self._model_by_id[aid].spec.channels)
        g = np.sqrt(self.load(aid, t_s))
        for end, factor, _step in c.resets:
            g = np.where(t_s >= end, g * factor, g)
        out = np.repeat(g[None, :], n_ch, axis=0)
        if c.drift_ch >= 0:
            out[c.drift_ch] *= 1.0 + c.drift_gain * self._drift_t(t_s) / self.spec.day_s
        return out

    def temperature_offset(self, aid: str, t_s: np.ndarray) -> np.ndarray:
        """What the scenario adds to the easy temperature at ``t_s`` (degC)."""
        sp, c = self.spec, self._cond[aid]
        off = sp.temp_per_load_c * (self.load(aid, t_s) - LOAD_REF)
        off = off + sp.ambient_c * np.sin(2 * np.pi * t_s / sp.day_s + self.phase_day - 0.5)
        off = off + c.drift_temp * self._drift_t(t_s) / sp.day_s
        for end, _factor, step in c.resets:
            off = off + np.where(t_s >= end, step, 0.0)
        return off

    def _in_gaps(self, aid: str, t_ns: np.ndarray) -> np.ndarray:
        out = np.zeros(len(t_ns), bool)
        for a, b in self._cond[aid].gaps:
            out |= (t_ns >= a) & (t_ns < b)
        return out

    def _frame_times(self, m: _AssetModel) -> np.ndarray:
        fs = m.spec.sample_rate_hz
        return np.array([_frame_t0(self.start_ns, k, self.frame_samples, fs) for k in range(m.n_frames)],
                        dtype=np.int64)

    def _reading_times(self, m: _AssetModel) -> np.ndarray:
        return np.array([self.start_ns + round(float(j * self.temperature_interval_s) * 1e9)
                         for j in range(m.n_readings)], dtype=np.int64)

    # ---- the easy generators, conditioned --------------------------------------------------------------
    def _condition(self, m: _AssetModel, lo_n: int, x: np.ndarray) -> None:
        fs = m.spec.sample_rate_hz
        n = x.shape[1]
        t = (lo_n + np.arange(n)) / fs
        x *= self.vibration_gain(m.spec.id, t)
        c = self._cond[m.spec.id]
        t_a, t_b = lo_n / fs, (lo_n + n) / fs
        for a, b, ch, size in c.bursts:
            if a < t_b and t_a < b:
                # its own stream, seeded by the burst and the frame: frames are made in order, but this does
                # not depend on it
                key = (*c.noise_seed.spawn_key, lo_n, ch)
                ss = np.random.SeedSequence(c.noise_seed.entropy, spawn_key=key)
                rng = np.random.Generator(np.random.PCG64(ss))
                on = (t >= a) & (t < b)
                x[ch] += np.where(on, size * m.sigma * rng.standard_normal(n), 0.0)

    def _asset_frames(self, m: _AssetModel) -> Iterator[tuple[int, str, str, int, np.ndarray]]:
        gaps = self._cond[m.spec.id].gaps
        for ev in super()._asset_frames(m):
            if not any(a <= ev[0] < b for a, b in gaps):
                yield ev

    def _asset_readings(self, m: _AssetModel) -> Iterator[tuple[int, str, str, float]]:
        aid = m.spec.id
        gaps = self._cond[aid].gaps
        rows = list(super()._asset_readings(m))
        if not rows:
            return
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        v = np.array([r[3] for r in rows]) + self.temperature_offset(aid, (ts - self.start_ns) / S)
        v = np.round(v, 3)
        for tsi, vi in zip(ts.tolist(), v.tolist()):
            if not any(a <= tsi < b for a, b in gaps):
                yield tsi, aid, "reading", vi

    def _asset_production(self, aid: str) -> Iterator[tuple[int, str, str, float, str]]:
        gaps = self._cond[aid].gaps
        for ev in super()._asset_production(aid):
            if not any(a <= ev[0] < b for a, b in gaps):
                yield ev

    def messages(self) -> Iterator[SimMessage]:
        """Easy's messages (conditioned, without the gaps) and the maintenance feedback, in event-time order
        (ties: asset, then stream: ``feedback`` before ``reading`` before ``waveform``)."""
        yield from heapq.merge(super().messages(), self.feedback, key=lambda m: (m.t_ns, m.asset, m.stream))

    def truth_dict(self) -> dict[str, Any]:
        d = super().truth_dict()
        d["scenario"] = self.scenario
        d["amplitude"] = self.fault_amplitude
        d["spec"] = self.spec.to_dict()
        d["events"] = [e.to_dict() for e in self.events]
        d["counts"] = {**d["counts"], "feedback": len(self.feedback),
                       "messages": self.n_frames + self.n_readings + len(self.feedback),
                       "events": len(self.events)}
        return d


def make_simulator(scenario: str, assets: Sequence[AssetLike] | int, *, amplitude: float = 1.0,
                   spec: RealisticSpec | None = None, **kwargs: Any) -> PlantSimulator:
    """``easy`` (:class:`PlantSimulator`, today's plant; ``amplitude`` scales its faults) or ``realistic``.

    >>> type(make_simulator("easy", 1, duration_s=1.0, n_faults=0)).__name__
    'PlantSimulator'
    """
    if scenario == "easy":
        return PlantSimulator(assets, fault_amplitude=amplitude, **kwargs)
    if scenario == "realistic":
        return RealisticPlantSimulator(assets, amplitude=amplitude, spec=spec, **kwargs)
    raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
