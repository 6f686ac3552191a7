"""Detection evaluation: point-wise (SKAB's F1, FAR, MAR) and event-wise metrics
(:mod:`~aiotstream.evaluation.metrics`), a labelled CSV/Parquet (:mod:`~aiotstream.evaluation.labelled`), a
simulator run through the flow (:mod:`~aiotstream.evaluation.simulated`) and the worst cases as a PNG
(:mod:`~aiotstream.evaluation.plot`). ``aiotstream evaluate`` is the command; :mod:`aiotstream.evaluate` keeps
the demo's short fault summary."""
