"""The e2e results as Markdown tables and one matplotlib PNG (throughput, latency, memory).

    python -m benchmarks.report RESULTS.json [--update-readme benchmarks/README.md]

re-renders a recorded run's report (the .md beside the JSON; its .png if present) without rerunning.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _m(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x / 1e6:,.{digits}f}"


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _contenders(res: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    w, p = res.get("waveform", {}), res.get("peers", {})
    rows = [
        ("aiotstream, 1 process, zscore", w.get("ours_1p"), "full"),
        ("aiotstream, 1 process, River HST", w.get("ours_1p_hst"), "full"),
        ("aiotstream, 2 processes, zscore", w.get("ours_2p"), "full"),
        ("Quix Streams + River", p.get("quix"), "full"),
        ("Bytewax per item + River", p.get("bytewax_items"), "slice"),
        ("numpy batch: fetch + decode + compute", p.get("numpy"), "full"),
    ]
    return [(name, r, inp) for name, r, inp in rows if r]


def markdown(res: dict[str, Any], png: Path | None, rel_to: Path) -> str:
    m = res["machine"]
    wl = res.get("workload", {}).get("waveform", {})
    out = [f"Run of {res['date']} on `{m['host']}` ({m['cpus']} x {m['cpu']}, {m.get('mem_gb')} GB; load average "
           f"at start {m.get('loadavg_at_start')}, at end {res.get('loadavg_at_end', '-')}), git `{res.get('git')}`, {res['elapsed_s']} s in all"
           + (" (**--quick: sizes too small for the figures to mean anything**)" if res.get("quick") else "") + ".",
           "", f"Command: `{res['command']}`", ""]
    rep = res.get("repeats")
    if rep and rep["n"] > 1:
        out += [(f"Every contender ran {rep['n']} times, interleaved round by round (order within a round: "
                 f"{', '.join(rep['order'])}"
                 + (f"; then the latency runs, round by round: {', '.join(rep['latency_order'])}"
                    if rep.get("latency_order") else "")
                 + "). Each row below is the run whose figure is the median; "
                 "every run's figure, the median, min, max and spread are under *Repeats*; ratios are the "
                 "median of the per-round ratios."), ""]
    noisy = noisy_figures(rep) if rep else []
    if noisy:
        out += [f"**Spread above {rep['spread_limit']:.0%} in {', '.join(noisy)}: not to be quoted.**", ""]
    if wl:
        sl = wl["slice"]
        out += [(f"Waveform workload: {wl['assets']} assets x {wl['duration_s']:g} s x {wl['channels']} channels x "
                f"{wl['sample_rate_hz']:g} Hz in {wl['frame_samples']}-sample frames = {wl['frames']:,} frames, "
                f"{wl['samples'] / 1e6:,.1f} M samples ({wl['bytes'] / 1e6:,.0f} MB) + {wl['readings']:,} temperature "
                f"readings; the slice is {sl['assets']} asset(s) x {sl['duration_s']:g} s ({sl['frames']} frames)."), ""]
    out += ["### Waveform throughput", "",
            "| contender | input | M samples/s per worker | frames/s | CPU s | peak RSS MB | windows out |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for name, r, inp in _contenders(res):
        out.append(f"| {name} | {inp} | {_m(r.get('samples_per_s_per_worker'))} | {_n(r.get('frames_per_s'))} | "
                   f"{r.get('cpu_s', '-')} | {_n(r.get('peak_rss_mb'))} | {_n(r.get('windows'))} |")
    np_ = res.get("peers", {}).get("numpy")
    if np_:
        out += ["", (f"numpy batch alone: compute {_m(np_['compute_samples_per_s'])} M samples/s, decode + compute "
                    f"{_m(np_['decode_compute_samples_per_s'])} M samples/s; fetching the frames from the broker took "
                    f"{np_['fetch_s']} s of its {np_['span_s']} s.")]
    s = res.get("summary", {})
    if s.get("ratios"):
        how = "median of the per-round ratios" if rep and rep["n"] > 1 else "same run"
        out += ["", f"### Ratios (samples/s per worker, {how})", "", "| ratio | measured |", "|---|---:|"]
        out += [f"| {k.replace('_', ' ')} | {'-' if v is None else f'{v:.3g}x'} |" for k, v in s["ratios"].items()]
    sc = res.get("scalar")
    if sc:
        ws = res["workload"]["scalar"]
        out += ["", "### Scalar workload", "",
                (f"{ws['events']:,} JSON readings ({ws['keys']:,} keys x {ws['rate_hz_per_key']:g} Hz x "
                f"{ws['duration_s']:g} s) through `{sc['flow']}`: {sc['label']}."), "",
                "| events/s per worker | CPU µs per event | CPU s | peak RSS MB |", "|---:|---:|---:|---:|",
                (f"| {_n(sc['events_per_s_per_worker'])} | {sc['cpu_us_per_event']} | {sc['cpu_s']} | "
                f"{_n(sc['peak_rss_mb'])} |")]
    lat = res.get("latency")
    if lat and lat.get("runs"):
        out += ["", "### Latency at half load", "",
                (f"Offered {lat['offered_samples_per_s'] / 1e6:.2f} M samples/s (half the 1-process rate above). "
                "Latency: the frame that completes a window is sent -> its score record is received from the "
                "output topic; 'from window end' starts at the window's last sample instead; the flow's "
                "histogram is its own aiotstream_output_latency_seconds over the same windows (window end -> "
                "on the broker; at real-time speed only)."), "",
                ("| epoch | flow's fetch.wait.max.ms | assets x speed | windows | p50 ms | p95 ms | p99 ms | max ms | "
                "sent->created p50 | created->received p50 | alerts | from window end p50 / p99 | "
                "flow's histogram p50 / p99 |"),
                "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in lat["runs"]:
            sc_, sp = r["score"], r.get("split", {})
            we, fh = r.get("score_from_window_end", {}), r.get("flow_histogram", {})
            out.append(f"| {r['epoch_s']:g} s | {r['fetch_wait_max_ms']} | {r['assets']} x {r['speed']:g} | "
                       f"{sc_.get('n', 0)} | {sc_.get('p50_ms', '-')} | {sc_.get('p95_ms', '-')} | "
                       f"{sc_.get('p99_ms', '-')} | {sc_.get('max_ms', '-')} | "
                       f"{sp.get('sent_to_created', {}).get('p50_ms', '-')} | "
                       f"{sp.get('created_to_received', {}).get('p50_ms', '-')} | {r['alert'].get('n', 0)} | "
                       f"{we.get('p50_ms', '-')} / {we.get('p99_ms', '-')} | "
                       f"{fh.get('p50_ms') or '-'} / {fh.get('p99_ms') or '-'} |")
    mem = res.get("memory")
    if mem and mem.get("points"):
        out += ["", "### Memory against assets", "", mem["method"] + ".", "",
                "| assets | RSS after last round MB | peak RSS MB | windows/s |", "|---:|---:|---:|---:|"]
        out += [f"| {p['assets']:,} | {p['final_rss_mb']:,.0f} | {p['peak_rss_mb']:,.0f} | {_n(p['windows_per_s'])} |"
                for p in mem["points"]]
        if mem.get("mb_per_1000_assets") is not None:
            out += ["", (f"About {mem['mb_per_1000_assets']} MB per 1,000 assets (RSS after the last round, "
                        "first to last point).")]
    if rep:
        out += repeats_markdown(rep)
    if s.get("targets"):
        out += ["", "### Against the targets", "", "| target | goal | measured (median) | | runs | spread |",
                "|---|---:|---:|---|---:|---|"]
        for k, t in s["targets"].items():
            met = "met" if t["met"] else ("**not met**" if t["met"] is not None else "n/a")
            meas = t["measured"]
            meas_s = "-" if meas is None else (f"{meas:,.0f}" if meas > 100 else f"{meas:g}")
            out.append(f"| {k.replace('_', ' ')} | {t['target']:,g} | {meas_s} | {met} | "
                       f"{t.get('runs', '-')} | {_spread(t)} |")
    if res.get("errors"):
        out += ["", "### Failed sections", ""] + [f"- `{k}`: {v.splitlines()[0]}" for k, v in res["errors"].items()]
    if png is not None:
        out += ["", f"![throughput, latency and memory]({os.path.relpath(png, rel_to)})"]
    return "\n".join(out) + "\n"


def noisy_figures(rep: dict[str, Any]) -> list[str]:
    """The figures and ratios whose spread exceeds the limit."""
    return [k for kind in ("figures", "ratios") for k, st in rep.get(kind, {}).items() if st.get("noisy")]


def _g(x: float | None) -> str:
    """A rate in whole numbers, a ratio or a latency in 3 significant digits."""
    return "-" if x is None else f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _spread(st: dict[str, Any]) -> str:
    """A figure's spread, flagged when it exceeds the limit (a run nobody should quote)."""
    if st.get("spread") is None:
        return "-"
    return f"**{st['spread']:.0%}: noisy, do not quote**" if st.get("noisy") else f"{st['spread']:.0%}"


def repeats_markdown(rep: dict[str, Any]) -> list[str]:
    """The *Repeats* table: every figure's runs, median, min, max and spread (flagged above the limit)."""
    out = ["", "### Repeats", "",
           (f"{rep['n']} run(s) per figure. Spread = (max - min) / median; above "
            f"{rep['spread_limit']:.0%} the figure is flagged noisy and is not to be quoted. A ratio's runs "
            "are the per-round ratios."), "",
           "| figure | runs | median | min | max | spread |", "|---|---|---:|---:|---:|---|"]
    for kind in ("figures", "ratios"):
        for k, st in rep.get(kind, {}).items():
            if st["median"] is None:
                continue
            runs = ", ".join(_g(v) for v in st["runs"])
            out.append(f"| {k.replace('_', ' ')} | {runs} | {_g(st['median'])} | {_g(st['min'])} | "
                       f"{_g(st['max'])} | {_spread(st)} |")
    return out


def plot(res: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), gridspec_kw={"width_ratios": [1.4, 1.2, 0.9]})
    ax = axes[0]
    rows = _contenders(res)
    np_ = res.get("peers", {}).get("numpy")
    if np_:  # the limit: the same features over frames already in memory
        rows.append(("numpy batch: compute only", {"samples_per_s_per_worker": np_["compute_samples_per_s"]}, "full"))
    names = [n.replace(", ", ",\n", 1) if n.startswith("aiotstream") else n.replace(": ", ":\n", 1) for n, _, _ in rows]
    vals = [r["samples_per_s_per_worker"] / 1e6 for _, r, _ in rows]
    colors = ["#1f77b4" if n.startswith("aiotstream") else "#7f7f7f" for n, _, _ in rows]
    bars = ax.barh(names[::-1], vals[::-1], color=colors[::-1])
    ax.set_xscale("log")
    ax.axvline(20, color="#d62728", ls="--", lw=1)
    ax.text(20, -0.6, " target 20", color="#d62728", fontsize=8)
    for bar, v in zip(bars, vals[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel("M samples/s per worker (log)")
    ax.set_title("Waveform throughput")
    ax.tick_params(axis="y", labelsize=8)

    ax = axes[1]
    runs = (res.get("latency") or {}).get("runs", [])
    if runs:
        import numpy as np

        labels = [f"epoch {r['epoch_s']:g} s\nfetch wait {r['fetch_wait_max_ms']} ms" for r in runs]
        x = np.arange(len(runs))
        for i, (q, c) in enumerate([("p50_ms", "#2ca02c"), ("p95_ms", "#ff7f0e"), ("p99_ms", "#d62728")]):
            ax.bar(x + (i - 1) * 0.25, [r["score"].get(q, 0) for r in runs], 0.25, label=q[:3], color=c)
        ax.axhline(250, color="#d62728", ls="--", lw=1)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
        ax.set_title(f"Latency at half load ({res['latency']['offered_samples_per_s'] / 1e6:.1f} M samples/s)")
    else:
        ax.set_axis_off()

    ax = axes[2]
    pts = (res.get("memory") or {}).get("points", [])
    if pts:
        ax.plot([p["assets"] for p in pts], [p["final_rss_mb"] for p in pts], "o-", label="after last round")
        ax.plot([p["assets"] for p in pts], [p["peak_rss_mb"] for p in pts], "s--", label="peak", alpha=0.6)
        ax.legend(fontsize=8)
        ax.set_xlabel("assets")
        ax.set_ylabel("RSS MB")
        ax.set_title("Memory against assets")
        ax.grid(alpha=0.3)
    else:
        ax.set_axis_off()
    fig.suptitle(f"aiotstream bench e2e, {res['date'][:10]}, {res['machine']['cpus']} CPUs"
                 + (" (--quick)" if res.get("quick") else ""), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def update_readme(readme: Path, md: str) -> None:
    """Replace the block between the results markers of ``readme`` with ``md``."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no {BEGIN} ... {END} block")
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{md}{END}", text, flags=re.DOTALL)
    readme.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="re-render the report of a recorded e2e run")
    ap.add_argument("results", help="results JSON written by bench e2e")
    ap.add_argument("--update-readme", metavar="README")
    args = ap.parse_args(argv)
    path = Path(args.results)
    res = json.loads(path.read_text())
    png = path.with_suffix(".png")
    png = png if png.exists() else None
    path.with_suffix(".md").write_text(markdown(res, png, path.parent))
    if args.update_readme:
        readme = Path(args.update_readme)
        update_readme(readme, markdown(res, png, readme.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
