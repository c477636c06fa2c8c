"""Training curves as PNG files (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from llmpost.reporting.metrics import read_metrics


def plot_curves(metrics_path: Path, out_dir: Path, keys: list[str]) -> list[Path]:
    """One PNG per metric in `keys` that was logged at least twice; returns the files written."""
    rows = read_metrics(metrics_path)
    written = []
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if len(points) < 2:
            continue
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out_dir.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([p[0] for p in points], [p[1] for p in points])
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{key.replace('/', '_')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
