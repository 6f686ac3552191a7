"""The plant (predictive-maintenance) flow's logic, without Bytewax."""
