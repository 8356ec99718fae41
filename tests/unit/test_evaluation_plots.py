"""The evaluation stage's plots: drawn from evaluation.json alone, seeds as error bars, every
axis labelled, written with the other outputs."""

import numpy as np
import pytest

from evaluation import plots, stage


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, processed_dir, model_dir):
    """Two "seeds" of one model (the same file twice), so the family has a spread of zero."""
    output = tmp_path_factory.mktemp("evaluation")
    models = {"gmf/seed0": model_dir, "gmf/seed1": model_dir}
    return stage.evaluate(processed_dir, models, output, k_max=12), output


def test_families_group_seeds_and_put_the_best_first(evaluated):
    result, _ = evaluated
    grouped = plots.families(result)
    assert set(grouped) == {"gmf", *stage.BASELINES}
    assert len(grouped["gmf"]) == 2
    hr = [np.mean([m["sampled"]["hr"]["10"] for m in members]) for members in grouped.values()]
    assert hr == sorted(hr, reverse=True)


@pytest.mark.parametrize("name", list(plots.PLOTS))
def test_every_plot_has_a_title_labelled_axes_and_a_legend(evaluated, name):
    figure = plots.PLOTS[name](evaluated[0])
    assert figure.get_suptitle() or all(axes.get_title() for axes in figure.axes)
    for axes in figure.axes:
        assert axes.get_xlabel()
    assert figure.axes[0].get_ylabel() or figure.axes[0].get_yticklabels()
    assert any(axes.get_legend() for axes in figure.axes)


def test_bars_are_the_family_means_with_the_seed_spread(evaluated):
    result, _ = evaluated
    figure = plots.comparison(result)
    bars = figure.axes[0].patches
    grouped = plots.families(result)
    expected = [np.mean([m["sampled"]["hr"]["10"] for m in ms]) for ms in grouped.values()]
    assert [bar.get_width() for bar in bars] == pytest.approx(expected)
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert "gmf (2 seeds)" in labels


def test_a_single_member_family_has_no_spread():
    summary = {"sampled": {"hr": {"10": 0.5}}}
    mean, std = plots._mean_std([summary], lambda s: s["sampled"]["hr"]["10"])
    assert (mean, std) == (0.5, 0.0)
    mean, std = plots._mean_std(
        [summary, {"sampled": {"hr": {"10": 0.7}}}], plots._reader("hr", "10")
    )
    assert mean == pytest.approx(0.6) and std == pytest.approx(np.std([0.5, 0.7], ddof=1))


def test_the_stage_writes_each_plot_as_a_png(evaluated):
    _, output = evaluated
    for name in plots.PLOTS:
        data = (output / stage.PLOTS_FOLDER / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert not list(output.glob(".evaluation-*"))  # the staging folder is gone
