"""Draws bench/curves/sweep.json (written by `cargo bench --bench sweep`) as one PNG per
dimension: vecgate's CPU per request, and the p50/p99 it adds over the direct path, as one
thing grows. A dotted line continues the first step in proportion to the work (CPU x grows
by x_n / x_0): a curve above it grows faster than linearly.

    .venv/bin/python bench/plot_sweep.py [bench/curves/sweep.json]
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TITLES = {
    "hits": ("hits per answer", "Chroma query, n_results = hits"),
    "terms": ("terms in the plan", "leaf conditions in alice's plan (and in the filter vecgate adds)"),
    "policies": ("resource policies loaded", "resource policies with derived roles in the store"),
    "connections": ("client connections", "keep-alive connections carrying the same rate"),
    "upsert": ("records per upsert", "Chroma upsert, ~8 KiB a record (127 ≈ 1 MiB)"),
}


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "curves" / "sweep.json")
    data = json.loads(source.read_text())
    out_dir = source.parent
    for dim, points in data["dimensions"].items():
        title, xlabel = TITLES.get(dim, (dim, dim))
        builds = sorted({p["build"] for p in points}, key=lambda b: (b != "vecgate", b))
        fig, (cpu_ax, lat_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
        for build in builds:
            series = sorted((p for p in points if p["build"] == build), key=lambda p: p["x"])
            xs = [p["x"] for p in series]
            cpu = [p["cpu_us"] for p in series]
            style = "-" if build == "vecgate" else "--"
            cpu_ax.plot(xs, cpu, style + "o", label=build)
            if build == "vecgate" and cpu and cpu[0]:
                cpu_ax.plot(xs, [cpu[0] * x / xs[0] for x in xs], ":", color="grey", label="proportional to the first step")
            lat_ax.plot(xs, [p["added_p50_ms"] for p in series], style + "o", label=f"{build} p50")
            lat_ax.plot(xs, [p["added_p99_ms"] for p in series], style + "s", label=f"{build} p99")
        for ax in (cpu_ax, lat_ax):
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        cpu_ax.set_yscale("log")
        cpu_ax.set_ylabel("vecgate CPU per request (µs)")
        lat_ax.set_ylabel("added over direct (ms)")
        rate = points[0].get("rate", data.get("rate"))
        fig.suptitle(f"How cost grows: {title} ({rate:g} requests/s; {data['date']}, commit {data['commit']}, load {data['load_start']})", fontsize=10)
        fig.tight_layout()
        target = out_dir / f"{dim}.png"
        fig.savefig(target, dpi=90)
        plt.close(fig)
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
