"""Run an ``aiotstream`` flow command with ``--metrics-port 0`` and scrape its /metrics every ``--every`` seconds
until it exits, like a Prometheus would (harder: Prometheus scrapes every 15-60 s). For the metrics overhead
figure in RESULTS.md: time this against the same command without the flag.

    python benchmarks/metrics_scrape.py --every 1 -- replay FILE --site SITE --out-dir OUT

Prints nothing of its own but one last line on stderr: how many scrapes, and the last scrape's input total.
Exit code: the command's.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import urllib.request


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=float, default=1.0, help="seconds between scrapes (default 1)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the aiotstream arguments")
    args = ap.parse_args()
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
