"""Run an ``aiotstream`` flow command with ``--metrics-port 0`` and scrape its /metrics every ``--every`` seconds
until it exits, like a Prometheus would (harder: Prometheus scrapes every 15-60 s). For the metrics overhead
figure in RESULTS.md: time this against the same command without the flag.

    python benchmarks/metrics_scrape.py --every 1 -- replay FILE --site SITE --out-dir OUT

Prints nothing of its own but one last line on stderr: how many scrapes, and the last scrape's input total.
Exit code: the command's.

    python benchmarks/metrics_scrape.py --cost 2000

instead times what one scrape costs the flow's process: the CPU milliseconds of building the /metrics answer
(every collector, the text format) with counters the size of a large site's (100 input topics, 30 dead-letter
reasons, 8 output kinds, losses, gauges), the median of 5 rounds of N scrapes.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import urllib.request


def cost(n: int) -> int:
    import statistics
    import time

    from aiotstream.io.metrics import MetricsServer
    from aiotstream.runstats import RunStats

    stats = RunStats()
    stats.add_many("inputs", {f"site.topic-{i:03d}": 1_000_000 + i for i in range(100)})
    stats.add_many("deadletters", {f"reason_{i:02d}": 1000 + i for i in range(30)})
    stats.add_many("outputs", {k: 50_000 for k in ("score", "alert", "kpi", "command", "deadletter", "feedback",
                                                    "lifecycle", "rollup")})
    stats.add_many("losses", {"mqtt_broker_dropped": 12, "mqtt_seq_gap": 10})
    stats.add_many("dropped", {"duplicate_frame": 7})
    stats.set("gauges", "active_suppressions", 3)
    server = MetricsServer(port=0, stats=stats, info={"version": "0.1.0", "site": "site"})
    from prometheus_client.exposition import choose_encoder

    encode, _ = choose_encoder("")
    size = len(encode(server.registry))
    rounds = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            encode(server.registry)
        rounds.append((time.process_time() - t0) / n * 1000)
    print(f"one scrape: {statistics.median(rounds):.3f} ms CPU (median of 5 rounds of {n}; min "
          f"{min(rounds):.3f}, max {max(rounds):.3f}); {size:,} bytes of text")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=float, default=1.0, help="seconds between scrapes (default 1)")
    ap.add_argument("--cost", type=int, metavar="N", help="time N scrapes in this process instead (see above)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the aiotstream arguments")
    args = ap.parse_args()
    if args.cost:
        return cost(args.cost)
    cmd = [a for a in args.command if a != "--"] if args.command[:1] == ["--"] else args.command
    proc = subprocess.Popen([sys.executable, "-m", "aiotstream.cli", *cmd, "--metrics-port", "0"],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    url: list[str] = []
    scrapes, last = 0, ""
    done = threading.Event()

    def scrape() -> None:
        nonlocal scrapes, last
        while not done.is_set():
            if url:
                try:
                    with urllib.request.urlopen(url[0], timeout=5) as r:
                        text = r.read().decode()
                    scrapes += 1
                    last = str(sum(float(v) for v in re.findall(r"^aiotstream_inputs_total\{.*\} (\S+)$", text,
                                                                   re.MULTILINE)))
                except OSError:
                    pass
            done.wait(args.every)

    t = threading.Thread(target=scrape, daemon=True)
    t.start()
    for line in proc.stderr:
        if not url and (m := re.search(r"metrics on (http://\S+/metrics)", line)):
            url.append(m.group(1))
        sys.stderr.write(line)
    rc = proc.wait()
    done.set()
    t.join(6)
    print(f"metrics_scrape: {scrapes} scrape(s), last inputs total {last or 'none'}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
