"""Issue 14's yardsticks (linecolor.evaluation.learned), checked on pipelines whose behaviour is known."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
from conftest import PYTHON
from PIL import Image, ImageDraw
from skimage.color import rgb2lab

from linecolor.evaluation import learned
from linecolor.evaluation.learned import learned_metrics, reference_palette, run_learned_evaluation
from linecolor.evaluation.regions import place_hints, true_regions

SIZE = 128
RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 160, 30)


def three_boxes() -> tuple[np.ndarray, np.ndarray]:
    """Clean line art of three outlined boxes on paper and its true colours (red, blue, green; white paper)."""
    line = Image.new("L", (SIZE, SIZE), 255)
    colour = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    for box, fill in (([8, 8, 56, 56], RED), ([70, 8, 120, 56], BLUE), ([8, 70, 120, 120], GREEN)):
        ImageDraw.Draw(line).rectangle(box, outline=0, width=2)
        ImageDraw.Draw(colour).rectangle(box, fill=fill, outline=(0, 0, 0), width=2)
    return np.asarray(line).copy(), np.asarray(colour).copy()


LINE, COLOUR = three_boxes()


class FakePipeline:
    """Colours every region: hinted ones their hint's colour, the rest ``suggest(region's true colour, options)``;
    the ``network`` composite is the truth with an optional dark rim beside the lines."""

    def __init__(self, suggest, rim: int = 0, colour: np.ndarray = COLOUR):
        self.truth = true_regions(LINE, colour)
        self.suggest, self.rim, self.colour = suggest, rim, colour

    def __call__(self, line, hints, reference=None, *, mode="deterministic", seed=None, latent_shift=0.0,
                 composite="regions"):
        labels = self.truth.labels
        hint = np.asarray(hints)
        out = np.full((SIZE, SIZE, 3), 255, np.uint8)
        for r in range(1, len(self.truth.areas)):
            inside = labels == r
            hinted = inside & (hint[..., 3] > 0)
            if hinted.any():
                out[inside] = hint[hinted][0, :3]
            else:
                out[inside] = self.suggest(self.truth.colours[r], mode=mode, seed=seed, shift=latent_shift,
                                           reference=reference)
        if composite == "network":
            out = self.colour.copy()
            if self.rim:
                from scipy import ndimage
                ink = LINE < 128
                rim = ndimage.binary_dilation(ink, iterations=3) & ~ink
                out[rim] = np.maximum(out[rim].astype(int) - self.rim, 0).astype(np.uint8)
        out[LINE < 128] = 0
        return Image.fromarray(out)


def seeded(k: int) -> np.random.Generator:
    return np.random.default_rng([7, k])


def test_place_hints_takes_an_exact_count():
    truth = true_regions(LINE, COLOUR)
    assert not place_hints(truth, seeded(0), count=0)[1].any()
    assert place_hints(truth, seeded(0), count=2)[2].sum() == 2
    assert place_hints(truth, seeded(0), count=99)[2].sum() == truth.scored.sum()


def test_an_oracle_beats_white_and_a_model_that_ignores_z_shows_no_variation():
    oracle = FakePipeline(lambda true, **_: np.round(true))
    metrics = learned_metrics(oracle, LINE, COLOUR, None, seeded)
    for k in learned.HINT_COUNTS[:2]:
        assert metrics[f"unhinted_accuracy_k{k}"] == pytest.approx(1.0)
        assert metrics[f"white_accuracy_k{k}"] < metrics[f"unhinted_accuracy_k{k}"]
    assert metrics["seed_delta_e"] == pytest.approx(0.0) and metrics["shift_delta_e"] == pytest.approx(0.0)
    assert metrics["hinted_delta_e"] == pytest.approx(0.0, abs=0.5)
    assert math.isnan(metrics["reference_pull"])


def test_seeds_and_shifts_that_change_colours_are_measured_and_hints_stay_put():
    def varied(true, *, mode, seed, shift, reference):
        if mode == "stochastic":
            return (200, 120, 40) if seed == learned.VARIATION_SEEDS[0] else (40, 120, 200)
        return (128 + 40 * shift, 128, 128 - 40 * shift)

    metrics = learned_metrics(FakePipeline(varied), LINE, COLOUR, None, seeded)
    assert metrics["seed_delta_e"] > 10 and metrics["shift_delta_e"] > 10
    assert metrics["hinted_delta_e"] < 1.0  # the hints' regions keep their colour in every variation


def test_the_reference_pull_is_positive_only_when_the_reference_mode_borrows_the_reference_palette():
    reference = np.zeros((SIZE, SIZE, 3), np.uint8)
    reference[:] = (250, 200, 0)

    def borrows(true, *, mode, reference, **_):
        return (250, 200, 0) if mode == "reference" else (128, 128, 128)

    def ignores(true, **_):
        return (128, 128, 128)

    assert learned_metrics(FakePipeline(borrows), LINE, COLOUR, reference, seeded)["reference_pull"] > 10
    assert learned_metrics(FakePipeline(ignores), LINE, COLOUR, reference, seeded)["reference_pull"] == \
        pytest.approx(0.0)
    palette = reference_palette(COLOUR)  # paper and the three fills, not the boxes' black outlines
    expected = rgb2lab(np.array([[(255, 255, 255), RED, BLUE, GREEN]], np.uint8))[0]
    assert sorted(np.round(palette, 6).tolist()) == sorted(np.round(expected, 6).tolist())


def test_shading_gain_and_halos():
    shaded = COLOUR.copy()
    shaded[72:118, 10:118] = np.linspace(0.55, 1.0, 108)[None, :, None] * np.array(GREEN)  # a lit green box
    grey = lambda true, **_: (128, 128, 128)  # noqa: E731 - a one-line fake
    clean = learned_metrics(FakePipeline(grey, colour=shaded), LINE, shaded, None, seeded)
    assert clean["shading_gain_db"] > 1.0  # the shaded output is the truth, the flat one the median green
    flat_truth = learned_metrics(FakePipeline(grey), LINE, COLOUR, None, seeded)
    assert flat_truth["shading_gain_db"] == pytest.approx(0.0)  # nothing to gain on flat colours
    assert flat_truth["halo"] == pytest.approx(flat_truth["halo_truth"]) and flat_truth["halo"] < 0.05
    halos = learned_metrics(FakePipeline(grey, rim=60), LINE, COLOUR, None, seeded)
    assert halos["halo"] > 0.5


def test_the_reported_shading_gain_pools_the_squared_errors():
    """One drawing whose flats are exact (a 100 dB PSNR) and whose shading misses by a level must not outweigh
    a drawing where shading halves the error: the pooled gain says what the split's PSNR says."""
    from linecolor.evaluation.learned import pooled_shading_gain

    rows = [{"flat_mse": 1e-10, "shaded_mse": 1.0, "shading_gain_db": -100.0},
            {"flat_mse": 100.0, "shaded_mse": 50.0, "shading_gain_db": 3.01}]
    assert pooled_shading_gain(rows) == pytest.approx(10 * np.log10(100 / 51))
    assert pooled_shading_gain(rows[1:]) == pytest.approx(3.0103, abs=1e-3)
    assert pooled_shading_gain(rows[:1]) < -90
    assert np.isnan(pooled_shading_gain([]))
    assert np.isnan(pooled_shading_gain([{"flat_mse": np.nan, "shaded_mse": np.nan, "shading_gain_db": np.nan}]))
    half = [{"flat_mse": 100.0, "shaded_mse": np.nan, "shading_gain_db": np.nan}, rows[1]]
    assert pooled_shading_gain(half) == pytest.approx(pooled_shading_gain(rows[1:]))  # only rows with both
    shaded = COLOUR.copy()
    shaded[72:118, 10:118] = np.linspace(0.55, 1.0, 108)[None, :, None] * np.array(GREEN)
    metrics = learned_metrics(FakePipeline(lambda true, **_: (128, 128, 128), colour=shaded), LINE, shaded, None,
                              seeded)
    assert metrics["shaded_mse"] == 0 < metrics["flat_mse"]  # the shaded output is the truth itself
    assert 10 * np.log10(255**2 / metrics["flat_mse"]) == pytest.approx(100 - metrics["shading_gain_db"], abs=1e-6)


def test_the_truths_shading_column_shades_the_flats_with_the_true_images_own_shading():
    """With every region's flat colour right, the true shading reproduces the true paper exactly; ink where the
    colour image has colour stays wrong whatever the shading, so its gain is finite there."""
    from linecolor.evaluation.learned import pooled_shading_gain, truly_shaded

    shaded = COLOUR.copy()
    shaded[72:118, 10:118] = np.linspace(0.55, 1.0, 108)[None, :, None] * np.array(GREEN)
    truth = true_regions(LINE, shaded)
    flats = np.round(truth.colours[truth.labels]).astype(np.uint8)
    flats[truth.labels == 0] = shaded[truth.labels == 0]  # the ink as the colour image has it
    np.testing.assert_allclose(truly_shaded(flats, shaded, LINE, truth), shaded, atol=1e-6)
    # Anti-aliased lines: a flat output equal to an unshaded truth gains nothing and loses nothing — the rims the
    # output has already darkened with the line are not darkened again by the truth's own rim.
    soft = np.asarray(Image.fromarray(LINE).resize((SIZE * 2, SIZE * 2)).resize((SIZE, SIZE), Image.BILINEAR))
    rims = (soft > 40) & (soft < 250)
    assert rims.sum() > 100
    unshaded = np.where(soft[..., None] >= 250, COLOUR, (COLOUR * (soft[..., None] / 255.0)).round()).astype(np.uint8)
    np.testing.assert_array_equal(truly_shaded(unshaded, unshaded, soft, true_regions(soft, unshaded)), unshaded)
    grey = lambda true, **_: (128, 128, 128)  # noqa: E731 - a one-line fake
    metrics = learned_metrics(FakePipeline(grey, colour=shaded), LINE, shaded, None, seeded)
    assert 0 < metrics["truth_shading_mse"] < metrics["flat_mse"]  # the hinted box's gradient is the gain
    coloured_ink = shaded.copy()
    coloured_ink[LINE < 128] = GREEN  # outlines the colour image does not draw
    ink_wrong = learned_metrics(FakePipeline(grey, colour=coloured_ink), LINE, coloured_ink, None, seeded)
    assert ink_wrong["truth_shading_mse"] > metrics["truth_shading_mse"]
    rows = [{"flat_mse": 100.0, "shaded_mse": 90.0, "truth_shading_mse": 25.0}]
    assert pooled_shading_gain(rows, "truth_shading_mse") == pytest.approx(10 * np.log10(4))
    assert np.isnan(pooled_shading_gain([{"flat_mse": 1.0, "shaded_mse": 1.0}], "truth_shading_mse"))


def test_run_learned_evaluation_writes_its_tables_with_a_real_tiny_model(tmp_path, monkeypatch):
    import torch

    from conftest import tiny_model_config
    from linecolor.data import sources
    from linecolor.models.colorizer import Colorizer

    class Record:
        def __init__(self, name):
            self.name = name

        def load(self, size, extra_xdog=True):
            from linecolor.data.pair import Pair
            line, colour = three_boxes()
            return Pair(color=colour, lines=line[None], name=self.name)

    asked = []

    def fake_iter(source, path, split=None):
        asked.append(split)
        return iter([Record("x"), Record("y"), Record("z")])

    monkeypatch.setattr(sources, "iter_source", fake_iter)
    torch.manual_seed(0)
    Colorizer(tiny_model_config(working_size=64)).save_pretrained(tmp_path / "tiny")
    out = run_learned_evaluation({"tiny": tmp_path / "tiny"}, {"openmoji": tmp_path}, tmp_path / "out", split="val",
                                 size=SIZE, limit_per_source=2, progress=False)
    assert asked == ["val"]
    assert [r["name"] for r in out["rows"]] == ["x", "z"]  # spread over the split, not its first names
    assert all(0.0 <= r["unhinted_accuracy_k0"] <= 1.0 for r in out["rows"])
    assert all(not math.isnan(r["reference_pull"]) for r in out["rows"])  # the other drawing is the reference
    report = out["files"]["md"].read_text()
    assert "| tiny | openmoji | 2 |" in report and "| tiny | combined | 2 |" in report
    assert out["files"]["csv"].read_text().count("\n") == 3


def test_the_cli_refuses_learned_without_weights_and_learned_with_regions(tmp_path):
    for args, message in ((["--learned"], "--weights"), (["--learned", "--regions", "--weights", "a=b"], "choose one")):
        run = subprocess.run([PYTHON, "-m", "linecolor", "evaluate", str(tmp_path / "o"), *args],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode != 0 and message in run.stderr, run.stderr
