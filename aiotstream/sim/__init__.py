"""Simulators with ground truth: :mod:`~aiotstream.sim.plant` (3-axis vibration, temperature, machine state
and part counters, with injected faults) and :mod:`~aiotstream.sim.building` (zone meters with injected
energy waste). Pure: they make messages; :mod:`aiotstream.io.simulator` feeds them to a flow or to Kafka."""
