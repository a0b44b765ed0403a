"""Figures. Each function takes tables/arrays and returns a matplotlib Figure; outputs.save_figure saves it."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def cv_pearson(summary: pd.DataFrame):
    """Pearson r per model: one point per fold, a bar for the pooled r."""
    models = summary[["group", "trait"]].drop_duplicates().to_records(index=False).tolist()
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(models), 3.6))
    for i, (group, trait) in enumerate(models):
        rows = summary[(summary.group == group) & (summary.trait == trait)]
        folds = rows[rows.fold != "all"]
        pooled = rows[rows.fold == "all"].pearson_r.iloc[0]
        ax.bar(i, pooled, color="#9ecae1", width=0.6, label="pooled r" if i == 0 else None)
        jitter = np.linspace(-0.15, 0.15, len(folds))
        ax.scatter(i + jitter, folds.pearson_r, color="#08519c", zorder=3, s=18, label="folds" if i == 0 else None)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(models)), [f"{g}\n{t}" for g, t in models])
    ax.set_ylabel("cross-validated Pearson r")
    ax.set_title("Cross-validated accuracy per rater group x trait")
    ax.legend(frameon=False, fontsize=8)
    return fig


def cv_scatter(ratings: np.ndarray, predictions: np.ndarray, folds: np.ndarray, title: str, r: float):
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(ratings, predictions, c=folds, cmap="tab10", s=10, vmin=0, vmax=9)
    low, high = min(ratings.min(), predictions.min()), max(ratings.max(), predictions.max())
    ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("mean rating")
    ax.set_ylabel("out-of-fold prediction")
    ax.set_title(f"{title}\npooled r = {r:.2f} (colour = fold)")
    return fig


def permutation_null(null: np.ndarray, observed: float, p_value: float, title: str):
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    finite = np.asarray(null)[np.isfinite(null)]  # a NaN r (constant prediction) has no place on the axis
    ax.hist(finite, bins=40, color="#bdbdbd", label=f"identity permutations (n={len(finite)})")
    ax.axvline(observed, color="#cb181d", lw=2, label=f"observed r = {observed:.2f}")
    ax.set_xlabel("cross-validated Pearson r")
    ax.set_ylabel("permutations")
    ax.set_title(f"{title}: p = {p_value:.3g}")
    ax.legend(frameon=False, fontsize=8)
    return fig


# ----------------------------------------------------------------------------- saliency (average_saliency.py)

GROUP_COLOURS = ("#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def _heat_rgba(values: np.ndarray, norm, cmap, signed: bool, mask: np.ndarray | None = None) -> np.ndarray:
    """Heatmap as RGBA whose opacity grows with |value|, so a face underneath shows where relevance is ~0."""
    rgba = cmap(norm(np.nan_to_num(values)))
    scale = max(abs(norm.vmin), abs(norm.vmax)) or 1.0
    strength = np.abs(values) / scale if signed else np.clip(values, 0, None) / scale
    rgba[..., 3] = np.clip(0.15 + 1.6 * np.nan_to_num(strength), 0.0, 0.95)
    if mask is not None:
        rgba[..., 3] = np.where(mask, rgba[..., 3], 0.0)
    return rgba


def _heat_panel(ax, values, norm, cmap, signed, background=None, mask=None):
    if background is not None:
        ax.imshow(background, cmap="gray", vmin=0.0, vmax=1.0, interpolation="bilinear")
    else:
        ax.set_facecolor("#d9d9d9")
        ax.imshow(np.zeros(values.shape + (4,)))  # sets the extent
    ax.imshow(_heat_rgba(values, norm, cmap, signed, mask), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _percent_colorbar(fig, norm, cmap, axes, label):
    """Colour bar whose ticks are percentages (no '1e-2' offset text colliding with titles)."""
    from matplotlib import cm, ticker

    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.8, pad=0.03)
    bar.ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{100 * value:.2g}%"))
    bar.set_label(label, fontsize=8)
    return bar


def _align_text(aligned: bool) -> str:
    return "aligned to mean face by landmarks" if aligned else "not aligned"


def average_saliency(maps: dict, groups, traits, aligned: bool, background: np.ndarray | None = None,
                     signed: bool = True, n_images: dict | None = None):
    """Average heatmap per model: rows = groups, columns = traits, ONE shared colour scale.

    ``maps`` maps (group, trait) -> (H, W) mean normalised relevance; ``background`` a grey
    (H, W) image in [0, 1] (the mean face) drawn underneath; ``signed`` uses a symmetric diverging
    scale (red = positive relevance, blue = negative; what that means per method: `explanations`),
    else positive relevance only.
    """
    from matplotlib import colors

    groups, traits = list(groups), list(traits)
    values = np.stack([np.asarray(maps[(g, t)], dtype=float) for g in groups for t in traits])
    vmax = float(np.abs(values).max() if signed else np.clip(values, 0, None).max()) or 1.0
    norm = colors.Normalize(-vmax, vmax) if signed else colors.Normalize(0.0, vmax)
    cmap = plt.get_cmap("RdBu_r" if signed else "Reds")
    fig, axes = plt.subplots(len(groups), len(traits), figsize=(2.7 * len(traits) + 1.4, 2.7 * len(groups) + 0.9),
                             squeeze=False, layout="constrained")
    for r, group in enumerate(groups):
        for c, trait in enumerate(traits):
            ax = axes[r, c]
            _heat_panel(ax, np.asarray(maps[(group, trait)], dtype=float), norm, cmap, signed, background)
            label = f"{group}, {trait}"
            if n_images and (group, trait) in n_images:
                label += f"\n(n = {n_images[(group, trait)]} images)"
            ax.set_title(label, fontsize=9)
    _percent_colorbar(fig, norm, cmap, axes.ravel().tolist(),
                      "mean relevance per pixel\n(% of each image's total |relevance|)")
    what = "red: positive relevance, blue: negative" if signed else "positive relevance only"
    fig.suptitle(f"Average LRP heatmaps, {_align_text(aligned)}\n({what}; one colour scale for all panels)",
                 fontsize=10)
    return fig


def group_difference_map(mean_difference: np.ndarray, significant: np.ndarray, group_a: str, group_b: str,
                         trait: str, alpha: float, n_identities: int, aligned: bool,
                         background: np.ndarray | None = None):
    """Mean A - B difference of normalised heatmaps: all pixels, and only those with max-statistic p_fwer <= alpha."""
    from matplotlib import colors

    diff = np.asarray(mean_difference, dtype=float)
    significant = np.asarray(significant, dtype=bool)
    vmax = float(np.abs(diff).max()) or 1.0
    norm = colors.Normalize(-vmax, vmax)
    cmap = plt.get_cmap("RdBu_r")
    fig, axes = plt.subplots(1, 2, figsize=(7.4, 3.9), layout="constrained")
    _heat_panel(axes[0], diff, norm, cmap, True, background)
    axes[0].set_title("mean difference, all pixels", fontsize=9)
    _heat_panel(axes[1], diff, norm, cmap, True, background, mask=significant)
    n_sig = int(significant.sum())
    axes[1].set_title(f"significant pixels only: {n_sig} of {significant.size}\n(p_fwer <= {alpha:g})", fontsize=9)
    if n_sig == 0:
        axes[1].text(0.5, 0.5, "no pixel significant", transform=axes[1].transAxes, ha="center", va="center",
                     fontsize=9, color="black", bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    _percent_colorbar(fig, norm, cmap, list(axes),
                      f"{group_a} - {group_b}, % of total |relevance| per pixel\n(red: more for {group_a})")
    fig.suptitle(f"{trait}: {group_a} - {group_b} models' heatmap difference, sign flips of {n_identities} identities, "
                 f"max-statistic FWER {alpha:g}\n{_align_text(aligned)}", fontsize=10)
    return fig


def region_relevance(summary: pd.DataFrame, tests: pd.DataFrame | None = None, alpha: float = 0.05):
    """Positive relevance per face region, grouped by rater group, one column of panels per trait.

    Top row: mean share of positive relevance with its 95 % CI; a black bar across each region
    marks its share of the image area, so a bar above the mark means more relevance than the
    region's size predicts. ``*`` marks a region whose group difference has a corrected
    p < alpha for share_pos in ``tests`` (columns trait, region, measure, p_fwer). Bottom
    row: relevance either way per unit area, mean share of absolute relevance / area share per
    image (log scale; 1 = as much as its size predicts), which keeps small regions such as the
    eyes readable.
    """
    groups = list(dict.fromkeys(summary["group"]))
    traits = list(dict.fromkeys(summary["trait"]))
    region_names = list(dict.fromkeys(summary["region"]))
    width = 0.8 / max(len(groups), 1)
    fig, axes = plt.subplots(2, len(traits), figsize=(1.6 + 0.75 * len(region_names) * len(traits) + 0.4 * len(groups),
                                                      6.4), squeeze=False, sharey="row", sharex=True,
                             gridspec_kw={"height_ratios": [3, 2]})
    top = float(np.nanmax(np.r_[summary["ci_high"].to_numpy(float), summary["mean_share_pos"].to_numpy(float),
                                summary["mean_area_share"].to_numpy(float)]))
    top = top if np.isfinite(top) and top > 0 else 1.0
    ratios = summary["mean_abs_per_area"].to_numpy(float)
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    x = np.arange(len(region_names))
    for column, trait in enumerate(traits):
        ax, ax_ratio = axes[0, column], axes[1, column]
        for k, group in enumerate(groups):
            rows = summary[(summary.group == group) & (summary.trait == trait)].set_index("region").reindex(region_names)
            mean = rows["mean_share_pos"].to_numpy(float)
            err = np.vstack([mean - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - mean])
            n = rows["n_images"].max()
            colour = GROUP_COLOURS[k % len(GROUP_COLOURS)]
            offset = x - 0.4 + width * (k + 0.5)
            ax.bar(offset, mean, width * 0.92, yerr=np.nan_to_num(err), capsize=2, color=colour, error_kw={"lw": 0.8},
                   label=f"{group} model (n = {int(n) if np.isfinite(n) else 0} images)")
            ax_ratio.bar(offset, rows["mean_abs_per_area"].to_numpy(float), width * 0.92, color=colour)
        area = summary[summary.trait == trait].groupby("region")["mean_area_share"].mean().reindex(region_names)
        ax.hlines(area.to_numpy(float), x - 0.45, x + 0.45, colors="black", lw=1.6, label="share of image area")
        if tests is not None and len(tests):
            for i, region in enumerate(region_names):
                hit = tests[(tests.trait == trait) & (tests.region == region) & (tests.measure == "share_pos")]
                if len(hit) and np.nanmin(hit["p_fwer"].to_numpy(float), initial=np.inf) < alpha:
                    ax.text(i, top * 1.04, "*", ha="center", va="bottom", fontsize=13)
        ax.set_title(trait, fontsize=10)
        ax.set_ylim(0, top * 1.15)
        ax_ratio.axhline(1.0, color="black", lw=1.0, ls="--", label="= its area share")
        ax_ratio.set_yscale("log")
        if len(ratios):
            ax_ratio.set_ylim(min(ratios.min(), 0.5) / 1.5, max(ratios.max(), 2.0) * 1.5)
        ax_ratio.set_xticks(x, region_names, rotation=30)
    axes[0, 0].set_ylabel("share of positive relevance")
    axes[1, 0].set_ylabel("share of |relevance|\n/ area share")
    axes[0, -1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[1, -1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    star = f"; * models differ, p_fwer < {alpha:g} over identities" if tests is not None else ""
    fig.suptitle(f"Positive relevance per face region: mean and 95% CI over identities{star}\n"
                 "(bar above the black mark, or above 1 below, = more relevance than the region's area predicts)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def heatmap_rgb(relevance: np.ndarray, colormap: str = "signed", limit: float | None = None) -> np.ndarray:
    """Relevance (H, W) -> RGB uint8. signed: diverging map, symmetric range (red positive, blue negative);
    positive: only positive relevance, white to red."""
    if colormap == "positive":
        relevance = np.clip(relevance, 0, None)
    limit = limit if limit is not None else float(np.abs(relevance).max()) or 1.0
    if colormap == "signed":
        scaled, cmap = (relevance / limit + 1) / 2, plt.get_cmap("RdBu_r")
    else:
        scaled, cmap = relevance / limit, plt.get_cmap("Reds")
    return (cmap(np.clip(scaled, 0, 1))[..., :3] * 255).astype(np.uint8)


def overlay(image: np.ndarray, relevance: np.ndarray, colormap: str = "signed", weight: float = 0.6) -> np.ndarray:
    """The face in grey with its heatmap blended on top: where relevance sits on the face."""
    grey = image.mean(axis=-1, keepdims=True).repeat(3, axis=-1)
    return (weight * heatmap_rgb(relevance, colormap) + (1 - weight) * grey).astype(np.uint8)


def extremes(images, relevance, ratings, predictions, names, colormap: str, title: str):
    """The reference study's figure: each face (top row) above its heatmap (bottom row),
    the k highest-rated faces on the left, the k lowest-rated on the right."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.7 * n, 4.0), squeeze=False)
    for column in range(n):
        axes[0, column].imshow(images[column])
        axes[0, column].set_title(f"{names[column]}\nrating {ratings[column]:.2f}\npred {predictions[column]:.2f}", fontsize=7)
        axes[1, column].imshow(heatmap_rgb(relevance[column], colormap))
        for row in range(2):
            axes[row, column].axis("off")
    fig.suptitle(f"{title}: highest-rated (left) and lowest-rated (right) faces; "
                 f"{'red = positive relevance, blue = negative' if colormap == 'signed' else 'positive relevance'}",
                 fontsize=9)
    return fig


def faithfulness(curves: pd.DataFrame):
    """Prediction change as the most relevant patches are removed first (solid) vs in random order
    (dashed): a method whose solid line is not above its dashed one does no better than chance."""
    models = curves[["group", "trait"]].drop_duplicates().to_records(index=False).tolist()
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.2), squeeze=False, sharey=True)
    colours = dict(zip(curves.analyzer.unique(), plt.get_cmap("tab10").colors))
    for ax, (group, trait) in zip(axes[0], models):
        rows = curves[(curves.group == group) & (curves.trait == trait)]
        for (analyzer, order), line in rows.groupby(["analyzer", "order"], sort=False):
            ax.plot(line.fraction_removed, line.mean_change, color=colours[analyzer],
                    ls="-" if order == "morf" else "--", label=f"{analyzer} ({'relevant first' if order == 'morf' else 'random'})")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(f"{group} {trait}", fontsize=9)
        ax.set_xlabel("share of image removed")
    axes[0, 0].set_ylabel("prediction drop (original - perturbed)")
    axes[0, -1].legend(fontsize=6, frameon=False)
    return fig


SCALE_LABELS = {"rating_per_area": "rating points per unit of face area",
                "share_per_area": "share of |relevance| / share of face area"}


def group_comparison(table: pd.DataFrame, null: np.ndarray, alpha: float = 0.05):
    """One trait's rater-level group comparison: each group's region importance, and the difference
    with its bootstrap CI against the rater-permutation null (grey: its central 95%)."""
    rows = table.reset_index(drop=True)
    group_a, group_b, trait = rows.group_a[0], rows.group_b[0], rows.trait[0]
    y = np.arange(len(rows))[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.8), sharey=True)
    for k, (column, group) in enumerate((("importance_a", group_a), ("importance_b", group_b))):
        left.barh(y + (0.2 if k == 0 else -0.2), rows[column], 0.38, color=GROUP_COLOURS[k], label=group)
    left.set_yticks(y, rows.region)
    left.set_xlabel(SCALE_LABELS.get(rows.scale[0], rows.scale[0]))
    left.set_title("region importance (mean over identities)", fontsize=9)
    left.legend(frameon=False, fontsize=8, loc="lower right")
    low, high = np.percentile(null, [2.5, 97.5], axis=1)
    right.barh(y, high - low, 0.6, left=low, color="0.88", label="rater-permutation null, central 95%")
    significant = rows.p_fwer < alpha
    right.errorbar(rows.difference, y, xerr=[rows.difference - rows.ci_low, rows.ci_high - rows.difference],
                   fmt="none", ecolor="black", elinewidth=1, capsize=3)
    right.scatter(rows.difference[significant], y[significant], color="black", zorder=3,
                  label=f"p_fwer < {alpha:g}")
    right.scatter(rows.difference[~significant], y[~significant], facecolor="white", edgecolor="black", zorder=3,
                  label="not significant")
    right.axvline(0, color="black", lw=0.8)
    for yi, p in zip(y, rows.p_fwer):
        right.annotate(f"p_fwer {p:.3g}", (1.01, yi), xycoords=("axes fraction", "data"), va="center", fontsize=7)
    right.set_xlabel(f"{group_a} - {group_b} (95% bootstrap CI over raters)")
    right.set_title(f"difference ({rows.n_raters_a[0]} vs {rows.n_raters_b[0]} raters, "
                    f"{rows.n_permutations[0]} permutations)", fontsize=9)
    right.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12 - 0.6 / len(rows)), ncol=3)
    fig.suptitle(f"{trait}: which face regions does each rater group's model rely on?", fontsize=10)
    fig.tight_layout()
    return fig
