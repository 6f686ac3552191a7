"""Runnable flows: ``python -m bytewax.run "flows.predictive_maintenance:get_flow('flows/sites/plant-a.toml')"``."""
