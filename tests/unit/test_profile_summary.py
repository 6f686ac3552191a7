"""benchmarks.profile_flow.summarise: py-spy's collapsed stacks read into shares per thread, per dataflow
step of the worker thread, and per function (own time, lines of one function added up)."""
from __future__ import annotations

from benchmarks.profile_flow import summarise

MAIN = "_run_module_as_main (<frozen runpy>:198);_run_code (<frozen runpy>:88);main (benchmarks/flowrun.py:170)"
RAW = "\n".join([
    (f"{MAIN};_run_flow.<locals>.run (aiotstream/cli.py:647);AnalyzerLogic.on_batch (aiotstream/pdm/flow.py:80);"
    "ZScoreDetector._learn (aiotstream/models/online.py:75) 30"),
    (f"{MAIN};_run_flow.<locals>.run (aiotstream/cli.py:647);AnalyzerLogic.on_batch (aiotstream/pdm/flow.py:80);"
    "ZScoreDetector._learn (aiotstream/models/online.py:76) 10"),
    (f"{MAIN};_run_flow.<locals>.run (aiotstream/cli.py:647);Ingestor.decode_grouped (aiotstream/pdm/ingest.py:9);"
    "decode_frame (aiotstream/codecs/frames.py:106) 20"),
    (f"{MAIN};_run_flow.<locals>.run (aiotstream/cli.py:647);_OutputPartition.write_batch (aiotstream/io/kafka.py:3)"
    " 15"),
    f"{MAIN};_run_flow.<locals>.run (aiotstream/cli.py:647) 25",
    "Thread._bootstrap (threading.py:1002);MetricsServer.serve (aiotstream/io/metrics.py:1) 100",
    "not a sample line",
])


def test_summarise_splits_the_worker_by_step_and_function() -> None:
    out = summarise(RAW, top=3)
    assert out.startswith("200 samples; threads: ")
    assert "Thread._bootstrap (threading.py) 50%" in out and "_run_module_as_main (<frozen runpy>) 50%" in out
    assert "the worker thread (100 samples) by dataflow step:" in out
    lines = out.splitlines()
    assert "   40.0%  analyze (windows, features, detectors, decisions)" in lines
    assert "   25.0%  in Bytewax (Rust: scheduling, progress, exchange) or idle" in lines
    assert "   20.0%  decode" in lines and "   15.0%  sink (encode, produce, wait for the broker)" in lines
    # own time: the two lines of _learn are one function; top 3 only
    own = lines[lines.index("the worker thread by function (own time), top 3:") + 1:]
    assert own == ["   40.0%  ZScoreDetector._learn (online.py)", "   25.0%  _run_flow.<locals>.run (cli.py)",
                   "   20.0%  decode_frame (frames.py)"]


def test_summarise_of_nothing_says_so() -> None:
    assert summarise("") == "0 samples; threads: "
