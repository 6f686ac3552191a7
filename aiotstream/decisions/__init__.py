"""Decisions for any entity (a plant asset or a building zone): alert lifecycle, control with its safety
envelope, planned maintenance, and :mod:`~aiotstream.decisions.effects`, the one step that turns alert and
command changes into outputs and KPI counts for both flows. Pure: no Bytewax, no I/O."""
