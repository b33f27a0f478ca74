"""Figures of a run, the ones a reader of the scANVI paper expects (seaborn on matplotlib).

Every function takes tidy rows (or the run folder, for artifacts) and writes PNG files into
``out_dir``, returning :class:`Figure` records (path, title, caption) for the report. Figures
are built on ``matplotlib.figure.Figure`` objects (Agg canvas), so nothing touches pyplot's
global state or needs a display.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from .paper import growth_fit, scaling_points
from .tables import metric_direction, ok_rows

DPI = 90
MAX_PANEL_ROWS = 6  # datasets shown per figure; more would make figures unreadable
UMAP_MAX_CELLS = 2000


@dataclass
class Figure:
    path: Path
    title: str
    caption: str = ""


def _new_figure(nrows: int, ncols: int, w: float = 4.2, h: float = 3.2):
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(w * ncols, h * nrows), dpi=DPI)
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def _save(fig, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{_safe(name)}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))[:120]


def _palette(methods: Iterable[str]) -> dict:
    import seaborn as sns

    methods = sorted(set(methods))
    colors = sns.color_palette("tab10" if len(methods) <= 10 else "tab20", len(methods))
    return dict(zip(methods, colors))


def _arrow(metric: str) -> str:
    d = metric_direction(metric)
    return " (higher better)" if d else " (lower better)" if d is False else ""


# ----------------------------------------------------------------------------- curves

def curves(df: pd.DataFrame, scenario: str, out_dir: Path, *, x: str = "k",
           metrics: Optional[list] = None, name: str = "curves", title: str = "") -> list[Figure]:
    """Metric against k (log axis) or pseudotime bin, one line per method, band = sd over seeds."""
    import seaborn as sns

    ok = ok_rows(df[df["scenario"] == scenario])
    ok = ok[ok[x].notna() & ok["cell_type"].isna()]
    if x == "k":  # per-bin rows also carry the k they used; they belong to the bin curves
        ok = ok[ok["bin"].isna()]
    if metrics is not None:
        ok = ok[ok["metric"].isin(metrics)]
    if x == "k":  # a metric at one k only is a single number: metric_bars draws it
        ok = ok[ok.groupby("metric")[x].transform("nunique") > 1]
    if ok.empty:
        return []
    metric_list = sorted(ok["metric"].unique())
    datasets = sorted(ok["dataset"].unique())[:MAX_PANEL_ROWS]
    colors = _palette(ok["method"])
    fig, axes = _new_figure(len(datasets), len(metric_list))
    for i, ds in enumerate(datasets):
        for j, metric in enumerate(metric_list):
            ax = axes[i, j]
            d = ok[(ok["dataset"] == ds) & (ok["metric"] == metric)]
            if d.empty:
                ax.set_axis_off()
                continue
            sns.lineplot(data=d, x=x, y="value", hue="method", palette=colors, marker="o", errorbar="sd",
                         ax=ax, legend=(i == 0 and j == len(metric_list) - 1))
            if x == "k" and d[x].nunique() > 2:
                ax.set_xscale("log")
            ax.set_title(f"{ds}\n{metric}{_arrow(metric)}", fontsize=9)
            ax.set_xlabel("k (neighbours)" if x == "k" else "pseudotime bin")
            ax.set_ylabel(metric)
    leg = axes[0, -1].get_legend()
    if leg is not None:
        leg.set_bbox_to_anchor((1.02, 1))
        leg.set_loc("upper left")
        leg.set_title("method")
    path = _save(fig, out_dir, f"{scenario}_{name}")
    cap = ("Mean over seeds, band = one standard deviation. "
           + (f"Only the first {MAX_PANEL_ROWS} datasets are drawn." if ok["dataset"].nunique() > MAX_PANEL_ROWS else ""))
    return [Figure(path, title or f"{scenario}: {', '.join(metric_list)} over {x}", cap)]


# ----------------------------------------------------------------------------- bars

def per_type_bars(df: pd.DataFrame, scenario: str, out_dir: Path) -> list[Figure]:
    """Per-cell-type values (e.g. held-out types' mixing, per-class accuracy), pooled over datasets."""
    import seaborn as sns

    ok = ok_rows(df[df["scenario"] == scenario])
    ok = ok[ok["cell_type"].notna() & ~ok["metric"].str.contains(":", regex=False)]
    if ok.empty:
        return []
    # a curve over k per type is summarised by its mean over k for the bars
    ok = ok.groupby(["dataset", "method", "seed", "metric", "cell_type"], as_index=False)["value"].mean()
    figs = []
    colors = _palette(ok["method"])
    for metric, d in ok.groupby("metric"):
        n_types = d["cell_type"].nunique()
        fig, axes = _new_figure(1, 1, w=max(5.0, 0.45 * n_types * max(1, d["method"].nunique()) ** 0.5 + 3), h=3.6)
        ax = axes[0, 0]
        sns.barplot(data=d, x="cell_type", y="value", hue="method", palette=colors, errorbar="sd", ax=ax)
        ax.set_title(f"{scenario}: {metric}{_arrow(metric)} per cell type", fontsize=10)
        ax.set_xlabel("")
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        for lab in ax.get_xticklabels():
            lab.set_horizontalalignment("right")
        ax.legend(title="method", bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=8)
        path = _save(fig, out_dir, f"{scenario}_per_type_{metric}")
        figs.append(Figure(path, f"{scenario}: {metric} per cell type",
                           "Mean over seeds and datasets (and over k for curves); error bar = sd."))
    return figs


def metric_bars(df: pd.DataFrame, scenario: str, out_dir: Path, paper: Optional[pd.DataFrame] = None,
                exclude: Iterable[str] = ("wall_time_s", "peak_memory_mb", "n_cells", "n_batches")) -> list[Figure]:
    """Scalar metrics per method (e.g. accuracy, AUROC), one panel per metric; paper values marked.

    Where the paper publishes a number for (scenario, method, metric) a red diamond marks it
    over the method's bar.
    """
    import seaborn as sns

    ok = ok_rows(df[df["scenario"] == scenario])
    single_k = ok.groupby("metric")["k"].transform("nunique") <= 1  # one k only: a number, not a curve
    ok = ok[(ok["k"].isna() | single_k) & ok["cell_type"].isna() & ok["bin"].isna()
            & ~ok["metric"].isin(list(exclude))]
    if ok.empty:
        return []
    metric_list = sorted(ok["metric"].unique())
    ncols = min(3, len(metric_list))
    nrows = int(np.ceil(len(metric_list) / ncols))
    methods = sorted(ok["method"].unique())
    fig, axes = _new_figure(nrows, ncols, w=max(4.2, 0.55 * len(methods) + 1.5), h=3.4)
    marked = False
    for idx, metric in enumerate(metric_list):
        ax = axes[idx // ncols, idx % ncols]
        d = ok[ok["metric"] == metric]
        hue = "dataset" if d["dataset"].nunique() > 1 else None
        sns.barplot(data=d, x="method", y="value", hue=hue, order=methods, errorbar="sd", ax=ax,
                    color=None if hue else "#4c72b0")
        if paper is not None and not paper.empty:
            pp = paper[(paper["scenario"] == scenario) & (paper["metric"] == metric)
                       & paper["level"].isna() & paper["method"].isin(methods)]
            for rec in pp.itertuples():
                ax.scatter([methods.index(rec.method)], [rec.value], marker="D", s=50, color="red", zorder=5,
                           label="paper" if not marked else None)
                marked = True
        ax.set_title(f"{metric}{_arrow(metric)}", fontsize=10)
        ax.set_xlabel("")
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        for lab in ax.get_xticklabels():
            lab.set_horizontalalignment("right")
        if ax.get_legend() is not None and idx != len(metric_list) - 1:
            ax.get_legend().remove()
        elif hue or marked:
            ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    for idx in range(len(metric_list), nrows * ncols):
        axes[idx // ncols, idx % ncols].set_axis_off()
    path = _save(fig, out_dir, f"{scenario}_metrics")
    cap = "Mean over seeds, error bar = sd." + (" Red diamonds: the paper's published value." if marked else "")
    return [Figure(path, f"{scenario}: metrics per method", cap)]


def group_heatmaps(df: pd.DataFrame, scenario: str, out_dir: Path) -> list[Figure]:
    """Heatmaps for grouped metrics ``<group>:<item>`` per cell type, e.g. ``protein_mean:CD19``:
    cell types x items, one panel per method, each item (column) z-scored (paper, Supp. Fig. 11b)."""
    import seaborn as sns

    ok = ok_rows(df[df["scenario"] == scenario])
    ok = ok[ok["cell_type"].notna() & ok["metric"].str.contains(":", regex=False)]
    if ok.empty:
        return []
    ok = ok.assign(group=ok["metric"].str.split(":").str[0], item=ok["metric"].str.split(":", n=1).str[1])
    figs = []
    for group, g in ok.groupby("group"):
        methods = sorted(g["method"].unique())
        ncols = min(3, len(methods))
        nrows = int(np.ceil(len(methods) / ncols))
        n_items, n_types = g["item"].nunique(), g["cell_type"].nunique()
        fig, axes = _new_figure(nrows, ncols, w=max(3.5, 0.35 * n_items + 2), h=max(3.0, 0.3 * n_types + 1.5))
        for idx, method in enumerate(methods):
            ax = axes[idx // ncols, idx % ncols]
            mat = g[g["method"] == method].pivot_table(index="cell_type", columns="item", values="value",
                                                       aggfunc="mean")
            z = (mat - mat.mean()) / mat.std(ddof=0).replace(0, np.nan)
            sns.heatmap(z, ax=ax, cmap="vlag", center=0, cbar=idx == len(methods) - 1,
                        xticklabels=True, yticklabels=True)
            ax.set_title(method, fontsize=9)
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.tick_params(labelsize=7)
        for idx in range(len(methods), nrows * ncols):
            axes[idx // ncols, idx % ncols].set_axis_off()
        path = _save(fig, out_dir, f"{scenario}_{group}_heatmap")
        figs.append(Figure(path, f"{scenario}: {group} per predicted cell type",
                           "Mean over seeds and datasets; each column z-scored across cell types."))
    return figs


# ----------------------------------------------------------------------------- scaling

def scaling_plot(df: pd.DataFrame, out_dir: Path) -> list[Figure]:
    """Time and peak memory against cells (and batches), log-log, growth exponent in the legend."""
    import seaborn as sns  # noqa: F401  (style only)

    pts = scaling_points(df)
    figs = []
    for xcol, label in (("n_cells", "cells"), ("n_batches", "batches")):
        p = pts[pts[xcol].notna()]
        if p.empty or p[xcol].nunique() < 2:
            continue
        # a sweep over cells holds batches fixed and vice versa: keep the most common other value
        other = "n_batches" if xcol == "n_cells" else "n_cells"
        if p[other].notna().any():
            p = p[p[other] == p[other].mode().iloc[0]]
        if p[xcol].nunique() < 2:
            continue
        colors = _palette(p["method"])
        fig, axes = _new_figure(1, 2, w=4.8, h=3.6)
        for ax, ycol, ylab in ((axes[0, 0], "wall_time_s", "wall time (s)"),
                               (axes[0, 1], "peak_memory_mb", "peak memory (MB)")):
            for method, g in p.groupby("method"):
                g = g[g[ycol].notna()]
                if g.empty:
                    continue
                mean = g.groupby(xcol)[ycol].agg(["mean", "std"]).reset_index()
                b, a = growth_fit(g[xcol], g[ycol])
                lab = f"{method} (~{label}^{b:.2f})" if np.isfinite(b) else method
                ax.errorbar(mean[xcol], mean["mean"], yerr=mean["std"].fillna(0), marker="o",
                            color=colors[method], label=lab, capsize=2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(f"number of {label}")
            ax.set_ylabel(ylab)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        path = _save(fig, out_dir, f"scaling_{label}")
        figs.append(Figure(path, f"scaling: time and memory against {label} (log-log)",
                           "Growth exponent b of a least-squares fit log y = a + b log x in the legend."))
    return figs


# ----------------------------------------------------------------------------- artifacts

def artifact_paths(run_dir: Path, filename: str) -> pd.DataFrame:
    """Artifacts ``artifacts/<scenario>/<dataset>/<method>/seed<seed>/<filename>`` of a run."""
    root = Path(run_dir) / "artifacts"
    recs = []
    if root.is_dir():
        for p in root.glob(f"*/*/*/seed*/{filename}"):
            seed_dir, method_dir, ds_dir, sc_dir = p.parents[0], p.parents[1], p.parents[2], p.parents[3]
            try:
                seed = int(seed_dir.name[4:])
            except ValueError:
                continue
            recs.append({"scenario": sc_dir.name, "dataset": ds_dir.name, "method": method_dir.name,
                         "seed": seed, "path": p})
    return pd.DataFrame(recs, columns=["scenario", "dataset", "method", "seed", "path"])


def de_roc(run_dir: Path, out_dir: Path, scenario: Optional[str] = None) -> list[Figure]:
    """ROC curves of each method's DE scores against the truth column of its ``de.csv``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    arts = artifact_paths(run_dir, "de.csv")
    if scenario is not None:
        arts = arts[arts["scenario"] == scenario]
    if arts.empty:
        return []
    arts = arts.loc[arts.groupby(["scenario", "dataset", "method"])["seed"].idxmin()]
    figs = []
    for scenario, sc in arts.groupby("scenario"):
        datasets = sorted(sc["dataset"].unique())[:MAX_PANEL_ROWS * 2]
        ncols = min(3, len(datasets))
        nrows = int(np.ceil(len(datasets) / ncols))
        fig, axes = _new_figure(nrows, ncols, w=4.0, h=3.8)
        colors = _palette(sc["method"])
        drawn = False
        for idx, ds in enumerate(datasets):
            ax = axes[idx // ncols, idx % ncols]
            for rec in sc[sc["dataset"] == ds].sort_values("method").itertuples():
                de = pd.read_csv(rec.path)
                if not {"score", "truth"} <= set(de.columns):
                    continue
                de = de[de["score"].notna() & de["truth"].notna()]
                truth = de["truth"].astype(bool).to_numpy()
                if truth.all() or not truth.any():
                    continue
                fpr, tpr, _ = roc_curve(truth, de["score"].to_numpy())
                auc = roc_auc_score(truth, de["score"].to_numpy())
                ax.plot(fpr, tpr, color=colors[rec.method], label=f"{rec.method} (AUROC {auc:.3f})")
                drawn = True
            ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
            ax.set_title(ds, fontsize=9)
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
            ax.legend(fontsize=7, loc="lower right")
        for idx in range(len(datasets), nrows * ncols):
            axes[idx // ncols, idx % ncols].set_axis_off()
        if not drawn:
            continue
        path = _save(fig, out_dir, f"{scenario}_de_roc")
        figs.append(Figure(path, f"{scenario}: DE ROC curves",
                           "Per-gene DE score of each method against the reference truth (first seed)."))
    return figs


def _load_embedding(path: Path) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    with np.load(path, allow_pickle=True) as z:
        keys = list(z.keys())
        emb_key = next((k for k in ("embedding", "latent", "X") if k in keys), None)
        if emb_key is None:
            emb_key = next(k for k in keys if z[k].ndim == 2)
        emb = np.asarray(z[emb_key], dtype=np.float32)
        batch = next((np.asarray(z[k]).astype(str) for k in ("batch", "batches") if k in keys), None)
        label = next((np.asarray(z[k]).astype(str) for k in ("cell_type", "label", "labels") if k in keys), None)
    return emb, batch, label


def umap_coords(emb: np.ndarray, cache: Optional[Path] = None, seed: int = 0) -> np.ndarray:
    """2-D UMAP of a latent (umap-learn, seeded so the same latent gives the same picture)."""
    if cache is not None and cache.exists():
        return np.load(cache)
    if emb.shape[1] <= 2:
        xy = emb[:, :2].astype(np.float32)
    else:
        import umap

        xy = umap.UMAP(n_neighbors=15, min_dist=0.3, random_state=seed, n_jobs=1).fit_transform(emb)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, xy)
    return xy


def umaps(run_dir: Path, out_dir: Path, scenario: Optional[str] = None,
          cache_dir: Optional[Path] = None, max_inputs: Optional[int] = 1) -> list[Figure]:
    """UMAP of each method's latent, coloured by batch and by label (first seed; subsampled).

    ``max_inputs`` inputs (datasets/variants) per scenario are drawn, in name order (None = all):
    a UMAP costs seconds per latent and a full run has hundreds of latents.
    """
    arts = artifact_paths(run_dir, "embedding.npz")
    if scenario is not None:
        arts = arts[arts["scenario"] == scenario]
    if arts.empty:
        return []
    arts = arts.loc[arts.groupby(["scenario", "dataset", "method"])["seed"].idxmin()]
    if max_inputs is not None:
        keep = {(sc, ds) for sc, g in arts.groupby("scenario") for ds in sorted(g["dataset"].unique())[:max_inputs]}
        arts = arts[[(sc, ds) in keep for sc, ds in zip(arts["scenario"], arts["dataset"])]]
    cache_dir = Path(cache_dir or Path(run_dir) / ".report_cache" / "umap")
    figs = []
    for (scenario, ds), g in arts.groupby(["scenario", "dataset"]):
        g = g.sort_values("method")
        fig, axes = _new_figure(len(g), 2, w=3.6, h=3.2)
        for i, rec in enumerate(g.itertuples()):
            emb, batch, label = _load_embedding(rec.path)
            idx = np.arange(len(emb))
            if len(idx) > UMAP_MAX_CELLS:  # seeded subsample keeps big latents quick to draw
                idx = np.sort(np.random.default_rng(0).choice(len(idx), UMAP_MAX_CELLS, replace=False))
            key = hashlib.sha256(emb[idx].tobytes()).hexdigest()[:16]
            xy = umap_coords(emb[idx], cache_dir / f"{key}.npy")
            for j, (colour_by, values) in enumerate((("batch", batch), ("label", label))):
                ax = axes[i, j]
                _scatter(ax, xy, None if values is None else values[idx])
                ax.set_title(f"{rec.method}: {colour_by}", fontsize=9)
        path = _save(fig, out_dir, f"{scenario}_{ds}_umap")
        figs.append(Figure(path, f"{scenario} / {ds}: UMAP of each latent",
                           f"Left: coloured by batch; right: by label (NaN = unlabelled). "
                           f"First seed; at most {UMAP_MAX_CELLS} cells; umap-learn random_state=0."))
    return figs


def _scatter(ax, xy: np.ndarray, values: Optional[np.ndarray]) -> None:
    import seaborn as sns

    ax.set_xticks([])
    ax.set_yticks([])
    if values is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=2, color="grey", linewidths=0)
        return
    cats = sorted(set(values))
    colors = dict(zip(cats, sns.color_palette("tab20" if len(cats) > 10 else "tab10", len(cats))))
    for cat in cats:
        m = values == cat
        colour = (0.8, 0.8, 0.8) if cat in ("nan", "None", "") else colors[cat]
        ax.scatter(xy[m, 0], xy[m, 1], s=2, color=colour, label=cat, linewidths=0, rasterized=True)
    if len(cats) <= 12:
        ax.legend(fontsize=6, markerscale=3, loc="best", frameon=False)
