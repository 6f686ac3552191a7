"""A simulated office building at 1 Hz, with waste patterns injected at known times (the ground truth).

Per zone and second: occupancy (office hours 08:00-18:00, at least one person
then), HVAC state (heating below 12 degC outdoors, cooling above 22 degC,
only while occupied), zone temperature and power (base load + people + HVAC
+ noise); one outdoor temperature for the building (a daily sine,
4-24 degC). Time of day follows ``day_s`` (a compressed day keeps tests short).

Injected (each in its own zones, disjoint from the others; the rest stay clean):

* ``hvac_empty_zone``: heating from 18:00 to 24:00 of ``inject_day`` with nobody in;
* ``simultaneous_heat_cool``: HVAC state 3 (heating and cooling at once) from 09:00 to 15:00 of
  ``inject_day`` while occupied;
* ``baseload_creep``: the zone's base load grows by ``creep_per_day`` each day from day 1 on;
* ``adjacent_heat_cool`` (``pairs`` pairs of ``neighbours``): one zone heats while its neighbour
  cools from 08:00 to 12:00 of ``inject_day`` (the others are off then: 12-22 degC outdoors).

>>> sim = BuildingSimulator([("z1", "f1"), ("z2", "f1"), ("z3", "f1"), ("z4", "f1")], duration_s=2, day_s=60,
...                         start_ns=0, empty=1, simultaneous=1, creep=1)
>>> len(list(sim.messages())), sorted(sim.truth()["hvac_empty_zone"]) == sorted(sim.empty)
(34, True)
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import orjson

from aiotstream.units import S

HVAC_KW = np.array([0.0, 2.5, 3.0, 5.5])  # off, heating, cooling, both


class BuildingSimulator:
    """``messages()`` yields ``(key, JSON reading)`` in event-time order, one second at a time."""

    def __init__(self, zones: Sequence[tuple[str, str]], *, duration_s: float, day_s: float = 86_400.0,
                 start_ns: int | None = None, seed: int = 11, empty: int = 2, simultaneous: int = 2,
                 creep: int = 2,
                 inject_day: int = 1, creep_per_day: float = 0.3, pairs: int = 0,
                 neighbours: dict[str, set[str]] | None = None, outdoor_asset: str = "weather",
                 outdoor_metric: str = "temperature",
                 meters: tuple[str, str, str, str] = ("power_kw", "temperature", "occupancy", "hvac_state")):
        self.zones = [z for z, _ in zones]
        self.n = len(self.zones)
        self.duration_s = int(duration_s)
        self.day_s = day_s
        day_ns = round(day_s * S)
        # midnight of a (compressed) day that ends before now, so nothing is from the future
        if start_ns is None:
            start_ns = (time.time_ns() - round(duration_s * S) - 60 * S) // day_ns * day_ns
        self.start_ns = start_ns
        self.seed = seed
        rng = np.random.default_rng(seed)
        picks = rng.permutation(self.n)
        k = 0
        groups = []
        for count in (empty, simultaneous, creep):
            groups.append(sorted(picks[k:k + count].tolist()))
            k += count
        if k > self.n:
            raise ValueError(f"{k} zones to inject into, the building has {self.n}")
        used = {int(i) for i in picks[:k]}
        index = {z: i for i, z in enumerate(self.zones)}
        self.pairs: list[tuple[int, int]] = []
        for i in picks[k:].tolist():  # a free zone and a free neighbour
            if len(self.pairs) >= pairs:
                break
            if i in used:
                continue
            free = sorted(index[n] for n in (neighbours or {}).get(self.zones[i], ()) if index[n] not in used)
            if free:
                self.pairs.append((i, free[0]))
                used.update((i, free[0]))
        if len(self.pairs) < pairs:
            raise ValueError(f"found {len(self.pairs)} free neighbouring pairs, {pairs} wanted")
        self.empty_ix, self.sim_ix, self.creep_ix = groups
        self.empty = [self.zones[i] for i in self.empty_ix]
        self.simultaneous = [self.zones[i] for i in self.sim_ix]
        self.creep = [self.zones[i] for i in self.creep_ix]
        self.inject_day = inject_day
        self.creep_per_day = creep_per_day
        self.base = rng.uniform(0.6, 1.4, self.n)
        self.outdoor = (outdoor_asset, outdoor_metric)
        self.meters = meters

    def truth(self) -> dict[str, list[str]]:
        return {"hvac_empty_zone": list(self.empty), "simultaneous_heat_cool": list(self.simultaneous),
                "baseload_creep": list(self.creep),
                "adjacent_heat_cool": sorted(self.zones[i] for p in self.pairs for i in p)}

    def clean_zones(self) -> list[str]:
        dirty = {z for zs in self.truth().values() for z in zs}
        return [z for z in self.zones if z not in dirty]

    def second(self, s: int,
               rng: np.random.Generator) -> tuple[int, float, np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]:
        """Event time, outdoor temperature and per-zone (power, temperature, occupancy, HVAC) at second
        ``s``."""
        t = self.start_ns + s * S
        day, frac = divmod(s / self.day_s, 1.0)
        hour = frac * 24.0
        outdoor = 14.0 + 10.0 * np.sin(2 * np.pi * (hour - 9.0) / 24.0)
        occupied = 8.0 <= hour < 18.0
        n = self.n
        occ = (1 + rng.poisson(3.0, n)).astype(np.float64) if occupied else np.zeros(n)
        mode = 1 if outdoor < 12.0 else (2 if outdoor > 22.0 else 0)
        hvac = np.full(n, mode if occupied else 0, dtype=np.int64)
        if day == self.inject_day:
            if 18.0 <= hour < 24.0:
                hvac[self.empty_ix] = 1
            if 9.0 <= hour < 15.0 and occupied:
                hvac[self.sim_ix] = 3
            if 8.0 <= hour < 12.0:
                for a, b in self.pairs:
                    hvac[a], hvac[b] = 1, 2
        base = self.base.copy()
        if day >= 1:
            base[self.creep_ix] *= 1.0 + self.creep_per_day * day
        power = base + 0.15 * occ + HVAC_KW[hvac] + rng.normal(0.0, 0.03, n)
        temp = np.where(hvac > 0, 21.0 + 0.05 * (outdoor - 17.0), 21.0 + 0.2 * (outdoor - 21.0)) + \
            rng.normal(0.0, 0.2, n)
        return t, float(outdoor), np.round(power, 4), np.round(temp, 3), occ, hvac

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        rng = np.random.default_rng(self.seed + 1)
        keys = [z.encode() for z in self.zones]
        dumps = orjson.dumps
        p_m, t_m, o_m, h_m = self.meters
        oa, om = self.outdoor
        for s in range(self.duration_s):
            t, outdoor, power, temp, occ, hvac = self.second(s, rng)
            yield oa.encode(), dumps({"asset": oa, "ts": t, "metric": om, "value": round(outdoor, 3)})
            for z, key, p, tc, o, h in zip(self.zones, keys, power.tolist(), temp.tolist(), occ.tolist(),
                                           hvac.tolist()):
                yield key, dumps({"asset": z, "ts": t, "metric": p_m, "value": p})
                yield key, dumps({"asset": z, "ts": t, "metric": t_m, "value": tc})
                yield key, dumps({"asset": z, "ts": t, "metric": o_m, "value": int(o)})
                yield key, dumps({"asset": z, "ts": t, "metric": h_m, "value": h})

    def malformed(self) -> list[tuple[bytes, bytes, str]]:
        """A few bad messages with the dead-letter reason each must get."""
        z, t = self.zones[0], self.start_ns
        return [
            (b"x", b'{"asset": "' + z.encode() + b'", "ts": 1, "metric"', "bad_json"),
            (b"ghost", orjson.dumps({"asset": "ghost-zone", "ts": t, "metric": self.meters[0], "value": 1.0}),
             "unknown_asset"),
            (z.encode(), orjson.dumps({"asset": z, "ts": t, "metric": self.meters[3], "value": 7}),
             "bad_value"),
            (z.encode(), orjson.dumps({"asset": z, "ts": t, "metric": self.meters[0], "value": "high"}),
             "bad_reading"),
            (z.encode(), orjson.dumps({"asset": z, "ts": t, "metric": "humidity", "value": 40.0}),
             "unknown_metric"),
        ]
