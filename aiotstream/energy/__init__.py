"""Energy optimisation in buildings: 1 Hz zone meters -> intervals -> baseline, waste alerts, setpoints, KPIs.

A building's zones are the flow's assets (their floor is the line, the
building is the site). Each zone has four meters, read as JSON readings
``{"asset": <zone>, "ts": ns, "metric": <meter>, "value": x}`` (Kafka) or as
MQTT payloads mapped to zone/metric by topic:

* power (kW), zone temperature (degC), occupancy (people), HVAC state
  (0 off, 1 heating, 2 cooling, 3 heating and cooling at once);
* one outdoor temperature sensor for the building (``building.outdoor_asset``).

Modules, engine-agnostic first:

* :mod:`~aiotstream.energy.waste`: the interval summary and the pure waste rules;
* :mod:`~aiotstream.energy.baseline`: the per-zone River regression + drift watch;
* :mod:`~aiotstream.energy.ingest`: a poll batch -> per-zone interval partials in one numpy step;
* :mod:`~aiotstream.energy.zone`: one zone's state (intervals, baseline, alerts, commands, KPI periods);
* :mod:`aiotstream.sim.building` (outside this package): a building with injected waste (ground truth);
* :mod:`aiotstream.dataflow.building`: the Bytewax wiring (outside this package: energy/ is pure).
"""
