"""The plot of a fan-out run: p99 latency against offered load, one line per system.

    .venv/bin/python bench/plot.py [bench/results/latest.json [bench/results/fanout.png]]

bench/run.py calls `plot` at the end of every run; this re-draws a saved result.
"""

import json
import sys
from pathlib import Path

KNEE_P99_MS = 250.0


def plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(13, 5))
    for name, system in report["systems"].items():
        steps = [s for s in system.get("steps", []) if s["p99_ms"] is not None]
        if not steps:
            continue
        offered = [s["offered_per_s"] for s in steps]
        line = latency.plot(
            offered,
            [s["p99_ms"] for s in steps],
            marker="o",
            label=f"{name} (knee {system.get('knee', 0):,.0f}/s)",
        )[0]
        throughput.plot(
            offered,
            [s["achieved_per_s"] for s in steps],
            marker="o",
            color=line.get_color(),
            label=name,
        )
    latency.axhline(KNEE_P99_MS, color="grey", linestyle="--", linewidth=1)
    latency.text(
        0.01, KNEE_P99_MS * 1.08, "250 ms", color="grey", transform=latency.get_yaxis_transform()
    )
    latency.set_yscale("log")
    latency.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    latency.yaxis.set_minor_formatter(ticker.NullFormatter())
    for axis in (latency, throughput):
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    throughput.set_yscale("log")
    throughput.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    latency.set_xlabel("offered deliveries/s")
    latency.set_ylabel("p99 latency, ms (log)")
    latency.set_title("p99 latency against load")
    latency.legend()
    latency.grid(True, which="both", alpha=0.3)
    top = max(
        [s["offered_per_s"] for sy in report["systems"].values() for s in sy.get("steps", [])]
        or [1]
    )
    bottom = min(
        [s["offered_per_s"] for sy in report["systems"].values() for s in sy.get("steps", [])]
        or [1]
    )
    throughput.plot([bottom, top], [bottom, top], color="grey", linestyle=":", linewidth=1)
    throughput.set_xlabel("offered deliveries/s")
    throughput.set_ylabel("achieved deliveries/s (log)")
    throughput.set_title("deliveries achieved")
    throughput.grid(True, alpha=0.3)
    throughput.legend()
    cfg = report["config"]
    figure.suptitle(
        f"Fan-out to {cfg['sockets']} sockets in one room, {report['machine']['cores']} cores "
        f"({report['started']})",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv):
    results = Path(__file__).resolve().parent / "results"
    source = Path(argv[0]) if argv else results / "latest.json"
    target = Path(argv[1]) if len(argv) > 1 else results / "fanout.png"
    plot(json.loads(source.read_text()), target)
    print(target)


if __name__ == "__main__":
    main(sys.argv[1:])
