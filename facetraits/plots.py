"""Figures. Each function takes tables/arrays and returns a matplotlib Figure; outputs.save_figure saves it."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import cm, colors, ticker  # noqa: E402
from scipy import ndimage  # noqa: E402

from facetraits import metrics, regions  # noqa: E402


def cv_pearson(summary: pd.DataFrame):
    """Pearson r per model: one point per fold, a bar for the pooled r with its 95% bootstrap CI over identities."""
    models = summary[["group", "trait"]].drop_duplicates().to_records(index=False).tolist()
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(models), 3.6))
    for i, (group, trait) in enumerate(models):
        rows = summary[(summary.group == group) & (summary.trait == trait)]
        folds = rows[rows.fold != "all"]
        pooled_row = rows[rows.fold == "all"].iloc[0]
        pooled = pooled_row.pearson_r
        ax.bar(i, pooled, color="#9ecae1", width=0.6, label="pooled r" if i == 0 else None)
        if np.isfinite(pooled_row.get("r_ci_low", np.nan)):
            below, above = max(pooled - pooled_row.r_ci_low, 0.0), max(pooled_row.r_ci_high - pooled, 0.0)
            ax.errorbar(i, pooled, yerr=[[below], [above]], fmt="none",  # a percentile CI may exclude the estimate
                        ecolor="black", capsize=4, lw=1, label="95% CI (bootstrap over identities)" if i == 0 else None)
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


CLIP_PERCENTILE = 99.0  # colour scales end at this percentile of |value|: a few pixels do not set them
DISPLAYS = ("pixels", "smooth", "conv")  # explain.map_display


def colour_limit(values, signed: bool) -> float:
    """Top of a colour scale: the CLIP_PERCENTILE-th percentile of |values| (of the positive values
    when not signed), so a handful of extreme pixels saturate instead of washing out the rest."""
    values = np.asarray(values, dtype=float)
    values = np.abs(values) if signed else np.clip(values, 0, None)
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.percentile(values, CLIP_PERCENTILE)) if len(values) else 1.0


def display_map(values: np.ndarray, display: str, cell: int) -> np.ndarray:
    """A map as shown: `pixels` as computed; `smooth` Gaussian-filtered (sigma = cell / 4); `conv`
    block-averaged to the conv map the head reads (`cell` = pixels per conv cell, config.display_cell)."""
    values = np.nan_to_num(np.asarray(values, dtype=float))
    if display == "pixels":
        return values
    if display == "smooth":
        return ndimage.gaussian_filter(values, sigma=cell / 4, mode="nearest")
    if display != "conv":
        raise ValueError(f"display {display!r} is not one of {', '.join(DISPLAYS)}")
    out = np.empty_like(values)
    rows, cols = (np.linspace(0, n, max(round(n / cell), 1) + 1).round().astype(int) for n in values.shape)
    for r0, r1 in zip(rows[:-1], rows[1:]):
        for c0, c1 in zip(cols[:-1], cols[1:]):
            out[r0:r1, c0:c1] = values[r0:r1, c0:c1].mean()
    return out


def _display_text(display: str, cell: int) -> str:
    return {"pixels": "per pixel", "smooth": f"smoothed (Gaussian, sigma {cell / 4:g} px)",
            "conv": f"averaged over {cell} x {cell} px conv cells"}[display]


def _colorbar(fig, norm, cmap, axes, label, percent: bool = False):
    """Colour bar with plain tick labels (percentages, or numbers without an offset text such as
    '1e-2' colliding with titles); arrows mark ends where values are clipped."""
    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.8, pad=0.03,
                       extend="both" if norm.vmin < 0 else "max")
    scale = 100 if percent else 1
    bar.ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{scale * value:.2g}{'%' if percent else ''}"))
    bar.set_label(label, fontsize=8)
    return bar


def _align_text(aligned: bool) -> str:
    return "aligned to mean face by landmarks" if aligned else "not aligned"


def average_saliency(maps: dict, groups, traits, aligned: bool, background: np.ndarray | None = None,
                     signed: bool = True, n_images: dict | None = None, display: str = "pixels", cell: int = 1):
    """Average heatmap per model: rows = groups, columns = traits, ONE shared colour scale.

    ``maps`` maps (group, trait) -> (H, W) mean normalised relevance; ``background`` a grey
    (H, W) image in [0, 1] (the mean face) drawn underneath; ``signed`` uses a symmetric diverging
    scale (red = positive relevance, blue = negative; what that means per method: `explanations`),
    else positive relevance only. ``display``/``cell``: see `display_map`. The scale ends at the
    99th percentile of all panels' |values| (`colour_limit`): single pixels (an image border, a
    background artefact) would otherwise set it and leave the face pale.
    """
    groups, traits = list(groups), list(traits)
    shown = {key: display_map(maps[key], display, cell) for key in [(g, t) for g in groups for t in traits]}
    vmax = colour_limit(np.stack(list(shown.values())), signed)
    norm = colors.Normalize(-vmax, vmax) if signed else colors.Normalize(0.0, vmax)
    cmap = plt.get_cmap("RdBu_r" if signed else "Reds")
    fig, axes = plt.subplots(len(groups), len(traits), figsize=(2.7 * len(traits) + 1.4, 2.7 * len(groups) + 0.9),
                             squeeze=False, layout="constrained")
    for r, group in enumerate(groups):
        for c, trait in enumerate(traits):
            ax = axes[r, c]
            _heat_panel(ax, shown[(group, trait)], norm, cmap, signed, background)
            label = f"{group}, {trait}"
            if n_images and (group, trait) in n_images:
                label += f"\n(n = {n_images[(group, trait)]} images)"
            ax.set_title(label, fontsize=9)
    _colorbar(fig, norm, cmap, axes.ravel().tolist(),
              f"mean relevance {_display_text(display, cell)}\n(% of each image's total |relevance|)", percent=True)
    what = "red: positive relevance, blue: negative" if signed else "positive relevance only"
    fig.suptitle(f"Average heatmaps, {_align_text(aligned)}\n({what})\none colour scale for all panels, "
                 f"clipped at the {CLIP_PERCENTILE:g}th percentile of |value|", fontsize=10)
    return fig


def group_difference_map(mean_difference: np.ndarray, significant: np.ndarray, group_a: str, group_b: str,
                         trait: str, alpha: float, n_identities: int, aligned: bool,
                         background: np.ndarray | None = None, display: str = "pixels", cell: int = 1):
    """Mean A - B difference of normalised heatmaps: all pixels, and only those with max-statistic
    p_fwer <= alpha (the test is per pixel; ``display`` smooths or block-averages only what is drawn)."""
    diff = display_map(mean_difference, display, cell)
    significant = np.asarray(significant, dtype=bool)
    vmax = colour_limit(diff, signed=True)
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
    _colorbar(fig, norm, cmap, list(axes),
              f"{group_a} - {group_b}\n% of total |relevance|\n{_display_text(display, cell)}\n(red: more for {group_a})",
              percent=True)
    fig.suptitle(f"{trait}: {group_a} - {group_b} models' heatmap difference\nsign flips of {n_identities} identities, "
                 f"max-statistic FWER {alpha:g}; {_align_text(aligned)}\ncolours clipped at the {CLIP_PERCENTILE:g}th "
                 f"percentile of |difference|", fontsize=10)
    return fig


# Rows of the region figure: (per-image column of the region table, its share column in the group tests, label).
REGION_MEASURES = (("abs_per_area", "share_abs", "|relevance|"), ("pos_per_area", "share_pos", "positive relevance"))


def region_order(names) -> list:
    """Region names in the order of regions.REGIONS; any other name after them, as given."""
    names = list(dict.fromkeys(names))
    return [r for r in regions.REGIONS if r in names] + [r for r in names if r not in regions.REGIONS]


def region_means(table: pd.DataFrame, confidence: float = 0.95) -> tuple[pd.DataFrame, str]:
    """Mean and CI of each REGION_MEASURES column per group x trait x region over units: identities
    when `table` (per image, saliency.REGION_COLUMNS) has an identity column, else images. Each
    identity's images are averaged first: images of one face are not independent evidence."""
    unit = "identity" if "identity" in table.columns else "image"
    rows = []
    for (group, trait, region), part in table.groupby(["group", "trait", "region"], sort=False):
        for measure, _, _ in REGION_MEASURES:
            per_unit = part.groupby(unit)[measure].mean()
            mean, low, high = metrics.mean_ci(per_unit, confidence)
            rows.append((group, trait, region, measure, mean, low, high, int(per_unit.notna().sum())))
    return pd.DataFrame(rows, columns=["group", "trait", "region", "measure", "mean", "ci_low", "ci_high", "n"]), unit


def region_relevance(table: pd.DataFrame, tests: pd.DataFrame | None = None, alpha: float = 0.05):
    """Relevance per unit area of each face region: share of |relevance| (top row) and of positive
    relevance (bottom row) over the region's share of the image area, columns = traits, bars =
    rater groups' models, on a linear axis where 1 (dashed) is what the region's size predicts.

    Per unit area, a large region (the background, the rest of the face) cannot dwarf the eyes
    merely by its size. Bars are means over the units of ``table`` (the per-image region table:
    identities when it has an identity column, else images) with 95% t CIs (`region_means`).
    ``*`` marks a region whose model-level group test in ``tests`` (columns trait, region,
    measure, p_fwer; sign flips over identities) has p_fwer < alpha.
    """
    means, unit = region_means(table)
    groups = list(dict.fromkeys(means["group"]))
    traits = list(dict.fromkeys(means["trait"]))
    region_names = region_order(means["region"])
    units = {"identity": "identities", "image": "images"}[unit]
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(region_names))
    fig, axes = plt.subplots(len(REGION_MEASURES), len(traits), squeeze=False, sharey="row", sharex=True,
                             figsize=(max(1.9 + (0.5 * len(region_names) + 0.3) * len(traits), 6.0), 6.4),
                             layout="constrained")
    for row, (measure, share, label) in enumerate(REGION_MEASURES):
        rows = means[means.measure == measure]
        top = np.nanmax(np.r_[rows["mean"].to_numpy(float), rows["ci_high"].to_numpy(float), 1.0])
        for column, trait in enumerate(traits):
            ax = axes[row, column]
            for k, group in enumerate(groups):
                part = rows[(rows.group == group) & (rows.trait == trait)].set_index("region").reindex(region_names)
                mean = part["mean"].to_numpy(float)
                err = np.vstack([mean - part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float) - mean])
                n = int(np.nanmax(part["n"].to_numpy(float), initial=0))
                ax.bar(x - 0.4 + width * (k + 0.5), mean, width * 0.92, capsize=2,
                       yerr=np.nan_to_num(err) if np.isfinite(err).any() else None,  # no CI: no whiskers
                       color=GROUP_COLOURS[k % len(GROUP_COLOURS)], error_kw={"lw": 0.8},
                       label=f"{group} model (n = {n} {units})")
            ax.axhline(1.0, color="black", lw=0.9, ls="--", label="= its share of the area")
            if tests is not None and len(tests):
                for i, region in enumerate(region_names):
                    hit = tests[(tests.trait == trait) & (tests.region == region) & (tests.measure == share)]
                    if np.nanmin(hit["p_fwer"].to_numpy(float), initial=np.inf) < alpha:
                        ax.text(i, top * 1.04, "*", ha="center", va="bottom", fontsize=13)
            ax.set_ylim(0, top * 1.15)
            ax.yaxis.set_major_formatter(ticker.ScalarFormatter(useOffset=False))
            if row == 0:
                ax.set_title(trait, fontsize=10)
            ax.set_xticks(x, region_names, rotation=35, ha="right", rotation_mode="anchor")
        axes[row, 0].set_ylabel(f"share of {label}\n/ share of area")
    axes[0, -1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    over = f"mean and 95% CI over {units}"
    star = f"; * models differ, p_fwer < {alpha:g} over identities" if tests is not None else ""
    fig.suptitle(f"Relevance per unit area of each face region\n{over}{star}\n"
                 "(above the dashed line = more relevance than the region's size predicts)", fontsize=9)
    return fig


def face_space(spaces):
    """t-SNE maps of the models' features (face_space.FaceSpace), one panel each: points coloured by
    the model's group's rating on one shared scale, the k highest-rated faces as upward triangles
    and the k lowest-rated as downward ones. Axes have no units: t-SNE keeps neighbours only."""
    ratings = np.concatenate([space.ratings for space in spaces])
    norm = colors.Normalize(float(ratings.min()), float(ratings.max()))
    columns = min(len(spaces), 2 if len(spaces) == 4 else 3)
    rows = -(-len(spaces) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns + 1.2, 3.2 * rows + 0.6), squeeze=False,
                             layout="constrained")
    for ax, space in zip(axes.ravel(), spaces):
        ax.scatter(*space.xy.T, c=space.ratings, cmap="viridis", norm=norm, s=12, linewidths=0)
        for indices, marker, label in ((space.highest, "^", "highest-rated"), (space.lowest, "v", "lowest-rated")):
            ax.scatter(*space.xy[indices].T, c=space.ratings[indices], cmap="viridis", norm=norm, s=70, marker=marker,
                       edgecolors="black", linewidths=1.2, label=f"{len(indices)} {label}")
        ax.set_title(space.title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(spaces):]:
        ax.axis("off")
    legend = axes.ravel()[0].legend(fontsize=7, frameon=False, loc="best")
    for handle in legend.legend_handles:  # the marker's shape says which; its colour would suggest a rating
        handle.set_array(None)
        handle.set_facecolor("white")
    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes.ravel().tolist(), shrink=0.8)
    bar.set_label("mean rating of the model's rater group", fontsize=8)
    fig.suptitle(f"Face space: t-SNE of the features each model's head reads (perplexity "
                 f"{', '.join(sorted({f'{space.perplexity:g}' for space in spaces}))}; neighbours, not distances)",
                 fontsize=10)
    return fig


def heatmap_rgb(relevance: np.ndarray, colormap: str = "signed") -> np.ndarray:
    """Relevance (H, W) -> RGB uint8 on the map's own range. signed: diverging map, symmetric range (red
    positive, blue negative); positive: only positive relevance, white to red."""
    if colormap == "positive":
        relevance = np.clip(relevance, 0, None)
    limit = float(np.abs(relevance).max()) or 1.0
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
    """The reference study's figure: heatmaps overlaid on the faces, the highest-rated faces (the
    first half of the inputs) in the top block, the lowest-rated (second half) in the bottom one,
    each face captioned with its rating and prediction, and ONE colour scale for all panels
    (ending at the 99th percentile of their |relevance|) so that panels compare."""
    signed = colormap == "signed"
    n = len(images)
    k = n - n // 2
    vmax = colour_limit(relevance, signed)
    norm = colors.Normalize(-vmax, vmax) if signed else colors.Normalize(0.0, vmax)
    cmap = plt.get_cmap("RdBu_r" if signed else "Reds")
    fig = plt.figure(figsize=(1.75 * k + 1.7, 5.2), layout="constrained")
    grid = fig.add_gridspec(3, k, height_ratios=[1, 0.08, 1])  # the empty middle row parts the two blocks
    panels = []
    for grid_row, (label, first, stop) in ((0, ("highest-rated", 0, k)), (2, ("lowest-rated", k, n))):
        for column, i in enumerate(range(first, stop)):
            ax = fig.add_subplot(grid[grid_row, column])
            grey = np.asarray(images[i], dtype=float).mean(axis=-1) / 255.0
            _heat_panel(ax, np.asarray(relevance[i], dtype=float), norm, cmap, signed, grey)
            ax.set_xlabel(f"{names[i]}\nrating {ratings[i]:.2f}, pred. {predictions[i]:.2f}", fontsize=7)
            if column == 0:
                ax.set_ylabel(f"{stop - first} {label}", fontsize=9, fontweight="bold")
            panels.append(ax)
    what = "red: positive relevance, blue: negative" if signed else "positive relevance only"
    _colorbar(fig, norm, cmap, panels, f"relevance per pixel ({what};\nclipped at the {CLIP_PERCENTILE:g}th "
                                       f"percentile of |relevance|)")
    fig.suptitle(title, fontsize=10)
    return fig


REFERENCE_LABELS = {"mean_face": "the aligned mean face", "blur": "its blurred copy"}


def short_name(analyzer: str) -> str:
    """lrp.sequential_preset_a_flat -> preset A flat: analyzer names short enough for a panel title."""
    return analyzer.removeprefix("lrp.").replace("sequential_preset_a_flat", "preset A flat") \
        .replace("sequential_preset_b_flat", "preset B flat")


FAITHFULNESS_COLUMNS = 4  # panels per row: a study of 10 models stays readable as 3 rows


def random_order_label(summary: pd.DataFrame) -> str:
    """The baseline's legend entry names how its orders were drawn: the two baselines give different verdicts."""
    row = summary.iloc[0]
    if row.random_baseline == "smooth":
        return f"random order (smoothed noise, sigma {row.random_sigma_patches:.2g} patches)"
    return "random order (shuffled patches)"


def faithfulness(curves: pd.DataFrame, summary: pd.DataFrame):
    """Prediction drop as patches are replaced by the reference, per model: per method most
    relevant first (solid) and least relevant first (dotted), and one random-order baseline
    (black, dashed). A faithful method's solid line lies above the baseline and its dotted line
    below; each panel's title lists the AOPCs (mean drop), the Holm-corrected ps of MoRF vs random
    and of MoRF vs LeRF, and n."""
    models = curves[["group", "trait"]].drop_duplicates().to_records(index=False).tolist()
    n_columns = min(len(models), FAITHFULNESS_COLUMNS)
    n_rows = -(-len(models) // n_columns)
    fig, axes = plt.subplots(n_rows, n_columns, figsize=(5.4 * n_columns, 5.6 * n_rows), squeeze=False, sharey=True,
                             layout="constrained")
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    methods = [m for m in curves.analyzer.unique() if m != "random"]
    colours = dict(zip(methods, plt.get_cmap("tab10").colors))
    styles = {"morf": ("-", "most relevant first"), "lerf": (":", "least relevant first")}
    random_label = random_order_label(summary)
    for ax, (group, trait) in zip(axes.flat, models):
        rows = curves[(curves.group == group) & (curves.trait == trait)]
        for (analyzer, order), line in rows.groupby(["analyzer", "order"], sort=False):
            if analyzer == "random":
                ax.plot(line.fraction_removed, line.mean_change, color="black", ls="--", lw=1.4, label=random_label)
            else:
                ax.plot(line.fraction_removed, line.mean_change, color=colours[analyzer], ls=styles[order][0],
                        label=f"{short_name(analyzer)}, {styles[order][1]}")
        ax.axhline(0, color="grey", lw=0.6)
        table = summary[(summary.group == group) & (summary.trait == trait)]
        text = [f"AOPC random {table.aopc_random.iloc[0]:.3f}; n = {table.n_images.iloc[0]} images, "
                f"{table.n_identities.iloc[0]} identities"]
        for row in table.itertuples():
            text += [f"{short_name(row.analyzer)}: AOPC MoRF {row.aopc_morf:.3f}, LeRF {row.aopc_lerf:.3f}",
                     f"   p_holm: MoRF > random {row.p_holm:.2g}, MoRF > LeRF {row.p_holm_morf_lerf:.2g}"]
        ax.set_title("\n".join([f"{group} {trait}"] + text), fontsize=8, loc="left")
        ax.set_xlabel(f"share of image replaced by {REFERENCE_LABELS.get(table.reference.iloc[0], 'the reference')}")
    for ax in axes[:, 0]:
        ax.set_ylabel("prediction drop (original - perturbed)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=9, frameon=False)
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
    for ax in (left, right):  # few short labels: a wide figure of 1e-4-sized values ran them together
        ax.xaxis.set_major_locator(ticker.MaxNLocator(5, steps=[1, 2, 2.5, 5, 10]))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    fig.suptitle(f"{trait}: which face regions does each rater group's model rely on?", fontsize=10)
    fig.tight_layout()
    return fig
