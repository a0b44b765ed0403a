"""Figures: shared, percentile-clipped colour scales, display modes, region means over identities, no overlapping text."""
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from facetraits import outputs, plots, regions


def drawn_tick_labels(axis):
    low, high = sorted(axis.get_view_interval())
    return [tick.label1 for tick in axis.get_major_ticks() if low <= tick.get_loc() <= high and tick.label1.get_visible()]


def assert_no_text_overlaps(fig):
    """No title, axis label or legend entry overlaps another, or a drawn tick label (tick labels
    among themselves are left out: the boxes of rotated labels overlap without the letters touching)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [fig._suptitle] if fig._suptitle else []
    ticks = []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        texts += ax.get_legend().get_texts() if ax.get_legend() else []
        ticks += drawn_tick_labels(ax.xaxis) + drawn_tick_labels(ax.yaxis)
    def boxes(items):
        return [(t.get_text(), t.get_window_extent(renderer)) for t in items if t.get_visible() and t.get_text().strip()]
    texts, ticks = boxes(texts), boxes(ticks)
    clashes = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(texts, 2) if box_a.overlaps(box_b)]
    clashes += [(a, b) for a, box_a in texts for b, box_b in ticks if box_a.overlaps(box_b)]
    assert not clashes, clashes[:3]


def colour_bars(fig):
    return [ax._colorbar for ax in fig.axes if hasattr(ax, "_colorbar")]


def test_colour_limit_is_the_99th_percentile_so_a_few_pixels_do_not_set_the_scale():
    values = np.random.default_rng(0).normal(size=(64, 64))
    values[0, :5] = 1000.0
    assert plots.colour_limit(values, signed=True) == pytest.approx(np.percentile(np.abs(values), 99))
    assert plots.colour_limit(values, signed=True) < 5
    assert plots.colour_limit(-np.abs(values), signed=False) == 1.0  # no positive value: a neutral scale


def test_display_modes():
    values = np.random.default_rng(1).normal(size=(32, 32))
    blocks = plots.display_map(values, "conv", 8)
    expected = values.reshape(4, 8, 4, 8).mean(axis=(1, 3)).repeat(8, axis=0).repeat(8, axis=1)
    np.testing.assert_allclose(blocks, expected)
    spike = np.zeros((32, 32))
    spike[16, 16] = 1.0
    smooth = plots.display_map(spike, "smooth", 8)
    assert smooth.max() < 0.1 and smooth.sum() == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_array_equal(plots.display_map(values, "pixels", 8), values)
    with pytest.raises(ValueError, match="not one of pixels, smooth, conv"):
        plots.display_map(values, "blur", 8)


def faces(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, size, size, 3)).astype(np.uint8), rng.normal(size=(n, size, size))


def test_extremes_one_colour_bar_two_labelled_blocks_no_overlaps(tmp_path):
    images, relevance = faces(6)
    relevance[0, 0, 0] = 1e3  # one extreme pixel must not set the shared scale
    fig = plots.extremes(images, relevance, np.array([6, 5, 4, 3, 2, 1.0]), np.array([5.5, 5, 4, 3, 2.5, 1.0]),
                         [f"face{i}" for i in range(6)], "signed", "ASD__warm (lrp.epsilon)")
    bars = colour_bars(fig)
    assert len(bars) == 1 and bars[0].norm.vmax == pytest.approx(np.percentile(np.abs(relevance), 99))
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel() and not hasattr(ax, "_colorbar")]
    assert labels == ["3 highest-rated", "3 lowest-rated"]
    assert "rating 6.00, pred. 5.50" in " ".join(ax.get_xlabel() for ax in fig.axes)
    assert_no_text_overlaps(fig)
    assert outputs.save_figure(fig, tmp_path / "extremes.png").stat().st_size > 1000


@pytest.mark.parametrize("display", plots.DISPLAYS)
def test_average_saliency_shared_percentile_scale(tmp_path, display):
    _, maps = faces(4, seed=2)
    maps[0, :2, :2] = 50.0
    keyed = dict(zip([(g, t) for g in ("ASD", "NT") for t in ("warm", "strong")], maps))
    fig = plots.average_saliency(keyed, ["ASD", "NT"], ["warm", "strong"], True, np.full((32, 32), 0.5),
                                 display=display, cell=8)
    shown = np.stack([plots.display_map(m, display, 8) for m in maps])
    (bar,) = colour_bars(fig)
    assert bar.norm.vmax == pytest.approx(np.percentile(np.abs(shown), 99)) and bar.norm.vmax < 50
    assert_no_text_overlaps(fig)
    difference = plots.group_difference_map(maps[0], maps[1] > 1, "ASD", "NT", "warm", 0.05, 4, True,
                                            display=display, cell=8)
    assert colour_bars(difference)[0].norm.vmax < 50
    outputs.save_figure(fig, tmp_path / "average.png")


def region_table(seed=0, identities=4, per_identity=3):
    rng = np.random.default_rng(seed)
    rows = []
    for group, trait, image in itertools.product(("ASD", "NT"), ("warm",), range(identities * per_identity)):
        shares = rng.dirichlet(np.ones(len(regions.REGIONS)))
        area = np.linspace(1, 2, len(regions.REGIONS)) / np.linspace(1, 2, len(regions.REGIONS)).sum()
        for region, share, area_share in zip(regions.REGIONS, shares, area):
            rows.append({"group": group, "trait": trait, "image": f"i{image}", "identity": f"p{image // per_identity}",
                         "region": region, "share_pos": share, "share_abs": share, "area_share": area_share,
                         "pos_per_area": share / area_share, "abs_per_area": share / area_share})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # row order must not matter


def test_region_means_are_over_identity_means():
    table = region_table()
    means, unit = plots.region_means(table)
    assert unit == "identity"
    row = means[(means.group == "NT") & (means.region == "mouth") & (means.measure == "abs_per_area")].iloc[0]
    per_identity = table[(table.group == "NT") & (table.region == "mouth")].groupby("identity").abs_per_area.mean()
    low, high = stats.t.interval(0.95, len(per_identity) - 1, per_identity.mean(), stats.sem(per_identity))
    assert row.n == 4 and row["mean"] == pytest.approx(per_identity.mean())
    assert (row.ci_low, row.ci_high) == pytest.approx((low, high))
    assert plots.region_means(table.drop(columns="identity"))[0].n.max() == 12  # no identities: images


def test_region_plot_linear_plain_ticks_regions_in_order(tmp_path):
    table = region_table()
    fig = plots.region_relevance(table.iloc[::-1])
    axes = [ax for ax in fig.axes if ax.get_ylabel() or ax.get_xticklabels()]
    assert all(ax.get_yscale() == "linear" for ax in axes)
    fig.canvas.draw()
    ticks = [label.get_text() for ax in axes for label in drawn_tick_labels(ax.yaxis)]
    assert ticks and all(text.replace(".", "").replace("\N{MINUS SIGN}", "").isdigit() for text in ticks), ticks
    assert [label.get_text() for label in fig.axes[-1].get_xticklabels()] == list(regions.REGIONS)
    assert "95% CI over identities" in fig._suptitle.get_text()
    assert_no_text_overlaps(fig)
    outputs.save_figure(fig, tmp_path / "regions.png")


def faithfulness_tables(n_models: int, analyzers=("gradient",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Curves and summary as lrp_analysis.py's faithfulness test writes them, for n_models models."""
    models = [("A" if k % 2 else "B", f"trait{k}") for k in range(n_models)]
    orders = [(a, o) for a in analyzers for o in ("morf", "lerf")] + [("random", "random")]
    curves = pd.DataFrame([{"group": g, "trait": t, "analyzer": a, "order": o, "fraction_removed": f, "mean_change": f}
                           for g, t in models for a, o in orders for f in (0.0, 0.5, 1.0)])
    summary = pd.DataFrame([{"group": g, "trait": t, "analyzer": a, "aopc_random": 0.1, "aopc_morf": 0.2,
                             "aopc_lerf": 0.0, "p_holm": 0.01, "p_holm_morf_lerf": 0.01, "n_images": 4,
                             "n_identities": 4, "reference": "blur", "random_baseline": "smooth",
                             "random_sigma_patches": 0.85} for g, t in models for a in analyzers])
    return curves, summary


@pytest.mark.parametrize("n_models, shape", [(2, (1, 2)), (10, (3, 4))])
def test_faithfulness_panels_wrap_into_rows_of_four(n_models, shape):
    """Ten models in one row made a figure 5,000 px wide; each model keeps one visible panel."""
    curves, summary = faithfulness_tables(n_models)
    models = list(summary[["group", "trait"]].itertuples(index=False, name=None))
    fig = plots.faithfulness(curves, summary)
    assert "random order (smoothed noise, sigma 0.85 patches)" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert plots.random_order_label(summary.assign(random_baseline="patches")) == "random order (shuffled patches)"
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == n_models
    assert fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == shape
    assert [ax.get_title(loc="left").splitlines()[0] for ax in visible] == [f"{g} {t}" for g, t in models]
    assert_no_text_overlaps(fig)


def test_stamp_stays_below_a_legend_under_the_panels(tmp_path):
    """The tight crop that makes room for the stamp used to move a figure legend anchored to the figure's bottom
    edge down onto the stamp (London's faithfulness figure). The stamp is grey (0.45); so the lowest rows with ink
    must hold no dark pixel of the legend's black text."""
    from PIL import Image

    curves, summary = faithfulness_tables(2, ("lrp.sequential_preset_a_flat", "lrp.epsilon", "gradient"))
    path = outputs.save_figure(plots.faithfulness(curves, summary), tmp_path / "f.png",
                               "lrp_analysis-20261207-103514-f1a04f | commit fb76560 | config 1af82375540f")
    grey = np.asarray(Image.open(path).convert("L"), dtype=int)
    inked = np.flatnonzero((grey < 250).any(axis=1))
    gaps = np.flatnonzero(np.diff(inked) > 1)
    lowest_block = grey[inked[gaps[-1] + 1]:inked[-1] + 1] if gaps.size else grey[inked]
    assert lowest_block.min() > 80  # only the stamp's grey ink, no legend text


@pytest.mark.parametrize("size", [1e-4, 3.0])
def test_group_comparison_tick_labels_stay_apart(size):
    """Differences of 1e-4 rating points (a flat head) drew '-0.0004-0.0003...' as one run of text."""
    regions_ = ["eyes", "brows", "nose", "mouth", "jaw", "forehead", "cheeks", "face"]
    rng = np.random.default_rng(0)
    difference = size * np.array([-2.8, -2.0, -3.4, -3.5, -2.1, 1.1, -2.2, -1.9])  # as in a quick run's table
    table = pd.DataFrame({"trait": "warm", "region": regions_, "group_a": "ASD", "group_b": "NT",
                          "importance_a": size * 4, "importance_b": size * 5, "difference": difference,
                          "ci_low": difference - 1.5 * size, "ci_high": difference + 2 * size, "p_fwer": 0.01,
                          "scale": "rating_per_area", "n_raters_a": 30, "n_raters_b": 30, "n_permutations": 99})
    fig = plots.group_comparison(table, size * rng.standard_normal((len(regions_), 99)))
    assert_no_text_overlaps(fig)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [label.get_window_extent(renderer) for label in drawn_tick_labels(ax.xaxis) if label.get_text()]
        assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2)), ax.get_xlabel()


def test_the_difference_maps_colour_scale_is_set_by_negative_differences_too():
    diff = -np.linspace(0.0, 1.0, 400).reshape(20, 20)
    diff[0, 0] = 0.001  # the only positive value
    figure = plots.group_difference_map(diff, np.zeros_like(diff, dtype=bool), "A", "B", "warm", 0.05, 10, False)
    limit = np.percentile(np.abs(diff)[np.abs(diff) > 0], plots.CLIP_PERCENTILE)
    assert sorted(figure.axes[-1].get_ylim()) == pytest.approx([-limit, limit])
    plots.plt.close(figure)


def test_the_accuracy_figure_shows_each_pooled_r_with_its_bootstrap_ci():
    rows = []
    for group, low, r, high in (("ASD", 0.80, 0.85, 0.90), ("NT", 0.55, 0.70, 0.78)):
        rows += [{"group": group, "trait": "warm", "fold": str(k), "pearson_r": r + 0.01 * k} for k in range(3)]
        rows.append({"group": group, "trait": "warm", "fold": "all", "pearson_r": r, "r_ci_low": low, "r_ci_high": high})
    fig = plots.cv_pearson(pd.DataFrame(rows))
    (ax,) = fig.axes
    segments = [c.lines[2][0].get_segments()[0] for c in ax.containers if hasattr(c, "has_yerr")]
    assert [tuple(np.round(s[:, 1], 6)) for s in segments] == [(0.80, 0.90), (0.55, 0.78)]
    assert_no_text_overlaps(fig)


def test_long_group_names_keep_every_text_of_the_difference_map_inside_the_figure():
    """Real groups are named like female_raters: the colour bar's label and the title once ran off the figure."""
    diff = np.linspace(-1.0, 1.0, 400).reshape(20, 20)
    figure = plots.group_difference_map(diff, np.zeros_like(diff, dtype=bool), "female_raters", "male_raters",
                                        "attractive", 0.05, 50, True, display="smooth", cell=38)
    figure.canvas.draw()
    renderer, frame = figure.canvas.get_renderer(), figure.bbox
    texts = [figure._suptitle, figure.axes[-1].yaxis.label] + [ax.title for ax in figure.axes]
    for text in texts:
        box = text.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, text.get_text()
    assert_no_text_overlaps(figure)
    plots.plt.close(figure)
