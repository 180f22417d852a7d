"""The region head (issue 14): features of each region, a learned pick among candidate colours, its file, its
training, and the pipeline using it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from linecolor.errors import LinecolorError, WeightsError
from linecolor.inference.composite import compose, head_inputs, network_medians, suggestions
from linecolor.inference.pipeline import ColorizationPipeline
from linecolor.inference.region_head import (
    FEATURE_NAMES,
    HINT_SLOTS,
    NUM_FEATURES,
    REGION_HEAD_FILE,
    REFERENCE_BONUS,
    REFERENCE_REACH,
    RegionHead,
    _nearest,
    region_features,
)
from linecolor.models.colorizer import Colorizer
from linecolor.training.region_head import RegionExamples, collect_examples, train_region_head

from conftest import draw_pair, tiny_model_config
from test_fill import regions_setup

PALETTE = np.array([[250, 30, 30], [30, 30, 250], [255, 255, 255]], np.float32)


def fixed_head(bias: list[float], palette: np.ndarray = PALETTE, hidden: int = 4) -> RegionHead:
    """A head whose scores are ``bias`` whatever the features (zero weights): the palette, the network's median,
    then as many per-region candidates as ``bias`` has room for."""
    p = len(bias)
    assert len(palette) + 2 <= p <= len(palette) + 2 + HINT_SLOTS
    weights = (np.zeros((NUM_FEATURES, hidden), np.float32), np.zeros(hidden, np.float32),
               np.zeros((hidden, hidden), np.float32), np.zeros(hidden, np.float32),
               np.zeros((hidden, p), np.float32), np.array(bias, np.float32))
    return RegionHead(weights, np.zeros(NUM_FEATURES, np.float32), np.ones(NUM_FEATURES, np.float32), palette)


def test_work_grid_knows_each_regions_shape_and_neighbours():
    grid = regions_setup()[3]
    left, right, outside = grid.labels[32, 16], grid.labels[32, 48], grid.labels[2, 2]
    assert len({left, right, outside}) == 3
    pairs = {tuple(p) for p in grid.pairs.tolist()}
    assert (min(left, outside), max(left, outside)) in pairs and (min(right, outside), max(right, outside)) in pairs
    assert (min(left, right), max(left, right)) not in pairs  # the boxes do not touch
    assert grid.shapes[outside, 6] == 1 and grid.shapes[left, 6] == 0 and grid.shapes[right, 6] == 0  # border
    assert grid.shapes[outside, 0] > grid.shapes[left, 0]  # log area share: the outside is larger
    cy, cx, bh, bw = grid.shapes[left, 1:5]
    assert 0.45 < cy < 0.55 and 0.2 < cx < 0.4 and 0.45 < bh < 0.55 and 0.3 < bw < 0.45


def test_region_features_average_the_hinted_neighbours_colours():
    shapes = np.zeros((4, 8))
    pairs = np.array([[1, 2], [1, 3], [2, 3]])
    median = np.full((4, 3), 128.0)
    hinted = np.array([False, False, True, True])
    table = np.array([[255, 255, 255], [255, 255, 255], [200, 0, 0], [0, 0, 200]], float)
    features, near = region_features(shapes, pairs, median, median, hinted, table)
    assert features.shape == (4, NUM_FEATURES) == (4, len(FEATURE_NAMES))
    assert near.shape == (4, 1 + HINT_SLOTS, 3)
    np.testing.assert_allclose(near[1, 0], [100, 0, 100])  # both hinted neighbours, averaged
    np.testing.assert_allclose(near[2, 0], [255, 255, 255])  # hinted regions themselves get no "near" colour
    assert features[1, FEATURE_NAMES.index("hinted_neighbours")] == 2
    assert features[1, FEATURE_NAMES.index("log_hinted_regions")] == pytest.approx(np.log(3))


def test_the_head_picks_its_most_likely_candidate_or_draws_from_its_probabilities():
    median = np.array([[10, 200, 10], [10, 200, 10]], np.float32)
    near = np.array([[0, 0, 0], [0, 0, 0]], np.float32)
    features = np.zeros((2, NUM_FEATURES))
    head = fixed_head([0, 5, 0, 1, 0])
    np.testing.assert_array_equal(head.choose(features, median, near), [[30, 30, 250]] * 2)
    ranked = head.ranked(features, median, near)[0]
    np.testing.assert_array_equal(ranked[:2], [[30, 30, 250], [10, 200, 10]])  # then the network's median
    even = fixed_head([0, 0, 0, 0, 0])
    many = np.zeros((400, NUM_FEATURES))
    draws = even.choose(many, np.repeat(median[:1], 400, 0), np.repeat(near[:1], 400, 0),
                        rng=np.random.default_rng(5))
    kinds = {tuple(c) for c in draws.tolist()}
    assert len(kinds) == 5  # every candidate comes up when they are equally likely
    again = even.choose(many, np.repeat(median[:1], 400, 0), np.repeat(near[:1], 400, 0),
                        rng=np.random.default_rng(5))
    np.testing.assert_array_equal(draws, again)  # seeded


def test_a_reference_makes_the_candidates_near_its_colours_likelier():
    median = np.array([[10, 200, 10]], np.float32)
    near = np.array([[255, 255, 255]], np.float32)
    features = np.zeros((1, NUM_FEATURES))
    head = fixed_head([0, 1, 0, 0, 0])  # the palette's blue, a little ahead of its red
    np.testing.assert_array_equal(head.choose(features, median, near), [[30, 30, 250]])
    towards_red = head.towards(np.array([[250, 30, 30], [0, 0, 0]]))
    np.testing.assert_array_equal(towards_red.choose(features, median, near), [[250, 30, 30]])
    bonus = towards_red.scores(features, median, near) - head.logits(features)
    np.testing.assert_allclose(bonus[0, 0], REFERENCE_BONUS)  # exactly on a reference colour: the whole bonus
    assert bonus[0, 1] == 0 and bonus[0, 3] == 0  # blue and the green median are far from red and black
    # Near but not on it: less, by distance (a red 10 levels off lies within REFERENCE_REACH of it).
    off = head.towards(np.array([[240, 40, 40]]))
    off_bonus = off.scores(features, median, near)[0, 0] - head.logits(features)[0, 0]
    distance = deltaE_ciede2000(lab([[240, 40, 40]]), lab([[250, 30, 30]]))[0]
    np.testing.assert_allclose(off_bonus, REFERENCE_BONUS * (1 - distance / REFERENCE_REACH), rtol=1e-5)
    # A reference far from every candidate changes nothing; so does the ranking's order without a reference.
    far = head.towards(np.array([[128, 0, 128]]))
    np.testing.assert_array_equal(far.ranked(features, median, near), head.ranked(features, median, near))


def test_the_head_file_round_trips_and_bad_files_are_refused(tmp_path):
    assert RegionHead.load(tmp_path) is None
    head = fixed_head([0, 1, 2, 3, 4])
    head.save(tmp_path, {"trained_on": "test"})
    back = RegionHead.load(tmp_path)
    for a, b in zip(head.weights, back.weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.palette, head.palette)

    (tmp_path / REGION_HEAD_FILE).write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="not a readable region head"):
        RegionHead.load(tmp_path)
    from safetensors.numpy import save_file

    tensors = {f"layer{i // 2}.{'weight' if i % 2 == 0 else 'bias'}": w for i, w in enumerate(head.weights)}
    tensors |= {"feature_mean": head.feature_mean, "feature_std": head.feature_std, "palette": head.palette}
    save_file(tensors, str(tmp_path / REGION_HEAD_FILE), metadata={"features": '["other"]'})
    with pytest.raises(WeightsError, match="other region features"):
        RegionHead.load(tmp_path)
    bad = dict(tensors, palette=np.zeros((7, 3), np.float32))  # 7 + 2 candidates against 5 scores
    save_file(bad, str(tmp_path / REGION_HEAD_FILE), metadata={"features": __import__("json").dumps(FEATURE_NAMES)})
    with pytest.raises(WeightsError, match="inconsistent"):
        RegionHead.load(tmp_path)
    nan = dict(tensors, **{"layer2.bias": np.full(5, np.nan, np.float32)})
    save_file(nan, str(tmp_path / REGION_HEAD_FILE), metadata={"features": __import__("json").dumps(FEATURE_NAMES)})
    with pytest.raises(WeightsError, match="non-finite"):
        RegionHead.load(tmp_path)


def test_a_head_left_beside_another_network_is_refused_and_can_be_replaced(tmp_path):
    torch.manual_seed(0)
    Colorizer(tiny_model_config(working_size=64, fill_guide=True)).save_pretrained(tmp_path)
    fixed_head([0, 1, 2, 3, 4]).save(tmp_path)
    assert RegionHead.load(tmp_path) is not None  # it records the network beside it
    torch.manual_seed(1)
    Colorizer(tiny_model_config(working_size=64, fill_guide=True)).save_pretrained(tmp_path)  # a new export
    with pytest.raises(WeightsError, match="another network.*train-head DIR --force"):
        RegionHead.load(tmp_path)
    with pytest.raises(WeightsError, match="another network"):
        ColorizationPipeline.from_pretrained(tmp_path, backend="plain")
    # the network alone still loads (what `train-head --force` does before it writes a new head)
    assert ColorizationPipeline.from_pretrained(tmp_path, backend="plain", region_head=None).region_head is None
    from safetensors.numpy import save_file

    head = fixed_head([0, 1, 2, 3, 4])
    tensors = {f"layer{i // 2}.{'weight' if i % 2 == 0 else 'bias'}": w for i, w in enumerate(head.weights)}
    tensors |= {"feature_mean": head.feature_mean, "feature_std": head.feature_std, "palette": head.palette}
    save_file(tensors, str(tmp_path / REGION_HEAD_FILE), metadata={"features": "[not json"})
    with pytest.raises(WeightsError, match="other region features"):
        RegionHead.load(tmp_path)


def test_suggestions_with_a_head_take_its_pick_and_the_composite_paints_it():
    analysis, colours, box, grid, fill = regions_setup()
    network_out = np.full((64, 64, 3), (55, 155, 255), np.uint8)
    right = grid.labels[32, 48]
    head = fixed_head([0, 0, 9, 0, 0])  # white
    np.testing.assert_allclose(suggestions(network_out, grid, 1.0, head=head, colours=colours)[right], [255] * 3)
    head = fixed_head([9, 0, 0, 0, 0])  # the palette's red, at the suggestion strength
    got = suggestions(network_out, grid, 0.5, head=head, colours=colours)[right]
    np.testing.assert_allclose(got, [252.5, 142.5, 142.5])
    out = np.asarray(compose(analysis, colours, network_out, box, grid, fill, suggestion_strength=1.0, head=head,
                             overlay_lines=False))
    np.testing.assert_array_equal(out[128, 192], [250, 30, 30])
    np.testing.assert_array_equal(out[128, 64], [255, 0, 0])  # the hinted box keeps its hint
    # the network's median is a candidate: a head that trusts it gives today's suggestion
    head = fixed_head([0, 0, 0, 9, 0])
    np.testing.assert_allclose(suggestions(network_out, grid, 1.0, head=head, colours=colours),
                               suggestions(network_out, grid, 1.0))
    medians = network_medians(network_out, grid)
    features, near = head_inputs(network_out, grid, colours, medians)
    assert features.shape == (len(grid.representative), NUM_FEATURES) and np.isfinite(features).all()
    np.testing.assert_allclose(near[right, 0], [255, 255, 255])  # the right box touches only unhinted paper
    np.testing.assert_allclose(near[grid.labels[2, 2], 0], [255, 0, 0])  # the outside touches the red box
    np.testing.assert_allclose(near[right, 2], [255, 0, 0])  # its mirror twin, the left box, is the red hint


def slot_setup():
    """Five regions: 1 (unhinted, left, network median reddish), 2 (hinted green, its mirror twin on the right),
    3 (hinted red, touching 1, lower down), 4 (unhinted, no twin near), 0 ink."""
    shapes = np.zeros((5, 8))
    shapes[:, 0] = np.log([1e-3, 0.05, 0.05, 0.2, 0.01])
    shapes[:, 1:3] = [[0, 0], [0.4, 0.3], [0.4, 0.7], [0.8, 0.5], [0.1, 0.1]]
    pairs = np.array([[1, 3], [2, 3]])
    median = np.array([[0, 0, 0], [190, 60, 60], [128, 128, 128], [128, 128, 128], [128, 128, 128]], float)
    hinted = np.array([False, False, True, True, False])
    table = np.array([[255] * 3, [255] * 3, [20, 160, 40], [220, 30, 30], [255] * 3], float)
    return shapes, pairs, median, hinted, table


def test_hint_slots_offer_the_hint_nearest_the_networks_colour_and_the_mirror_twins():
    shapes, pairs, median, hinted, table = slot_setup()
    features, extra = region_features(shapes, pairs, median, median, hinted, table)
    names = list(FEATURE_NAMES)
    np.testing.assert_allclose(extra[1, 1], [220, 30, 30])  # the red hint is nearest its reddish median
    np.testing.assert_allclose(extra[1, 2], [20, 160, 40])  # the green region is its mirror image
    assert features[1, names.index("colour_slot_present")] == features[1, names.index("twin_slot_present")] == 1
    assert features[1, names.index("colour_slot_adjacent")] == 1  # region 3 touches region 1
    assert features[1, names.index("twin_slot_adjacent")] == 0
    assert features[1, names.index("twin_slot_mirror")] == pytest.approx(0.0)
    assert features[1, names.index("twin_slot_area")] == pytest.approx(0.0)
    assert features[4, names.index("twin_slot_mirror")] > 0.3  # no hinted region near its mirror image
    red_lab = lab([[220, 30, 30]])[0]
    assert features[1, names.index("colour_slot_L")] == pytest.approx(red_lab[0] / 50)
    assert features[1, names.index("colour_slot_delta")] == pytest.approx(
        np.linalg.norm(lab([[190, 60, 60]])[0] - red_lab) / 50)
    np.testing.assert_allclose(extra[1, 3], [20, 160, 40])  # the other hint, second-nearest its median
    assert features[1, names.index("next_colour_slot_present")] == 1
    assert features[1, names.index("next_colour_slot_delta")] > features[1, names.index("colour_slot_delta")]


def test_with_one_hint_the_next_colour_slot_is_empty():
    shapes, pairs, median, hinted, table = slot_setup()
    hinted[2] = False  # only the red region is hinted
    features, extra = region_features(shapes, pairs, median, median, hinted, table)
    names = list(FEATURE_NAMES)
    np.testing.assert_allclose(extra[1, 1], [220, 30, 30])
    np.testing.assert_allclose(extra[:, 3], 255.0)
    assert (features[:, names.index("next_colour_slot_present")] == 0).all()
    assert (features[:, names.index("colour_slot_present")] == 1).all()
    assert (features[:, names.index("next_colour_slot_mirror")] > 1.5).all()


def test_nearest_ranks_the_targets_by_distance():
    points = np.array([[0.0, 0.0], [10.0, 0.0]])
    targets = np.array([[9.0, 0.0], [1.0, 0.0], [5.0, 0.0], [20.0, 0.0]])
    assert _nearest(points, targets).tolist() == [[1], [0]]
    assert _nearest(points, targets, count=4).tolist() == [[1, 2, 0, 3], [0, 2, 1, 3]]


def test_nearest_never_names_one_target_twice_among_ties():
    """Two hints of one colour are equally near: the next-colour slot must still offer the other hinted region."""
    ranked = _nearest(np.zeros((1, 2)), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), count=3)
    assert ranked.tolist() == [[0, 1, 2]]


def test_without_hints_the_slots_are_white_and_empty():
    shapes, pairs, median, _, table = slot_setup()
    features, extra = region_features(shapes, pairs, median, median, np.zeros(5, bool), table)
    np.testing.assert_allclose(extra, 255.0)
    names = list(FEATURE_NAMES)
    for slot in ("colour_slot", "twin_slot", "next_colour_slot"):
        assert (features[:, names.index(f"{slot}_present")] == 0).all()
        assert (features[:, names.index(f"{slot}_mirror")] > 1.5).all()  # beyond any real mirror distance
    assert np.isfinite(features).all()


def test_a_head_learns_to_take_a_hint_slot_when_its_features_say_it_fits():
    """Truth: the twin slot's colour where the mirror distance is small, else white. The head has no palette
    colour for the slots' varied colours, so only the slot candidate can be right."""
    rng = np.random.default_rng(3)
    n = 800
    features = rng.normal(size=(n, NUM_FEATURES))
    twin = rng.random(n) < 0.5
    features[:, FEATURE_NAMES.index("twin_slot_mirror")] = np.where(twin, 0.02, 0.6)
    slot_colours = rng.uniform(0, 255, (n, 3))
    extra = np.full((n, 1 + HINT_SLOTS, 3), 255.0)
    extra[:, 2] = slot_colours
    medians = np.full((n, 3), 128.0)
    truth = np.where(twin[:, None], slot_colours, 255.0)
    examples = RegionExamples(features, medians, extra, truth, rng.integers(50, 5000, n))
    head = train_region_head(examples, palette_size=2, hidden=16, epochs=300, seed=0)
    assert head.num_extra == 1 + HINT_SLOTS
    picks = head.choose(features, medians.astype(np.float32), extra.astype(np.float32))
    right = deltaE_ciede2000(lab(picks), lab(truth)) < 15
    assert right[twin].mean() > 0.9 and right[~twin].mean() > 0.9, (right[twin].mean(), right[~twin].mean())


def test_a_head_refuses_fewer_per_region_candidates_than_it_scores():
    head = fixed_head([0, 0, 0, 0, 0, 0, 0], palette=PALETTE)  # P + 4 outputs: three per-region candidates
    assert head.num_extra == 3
    with pytest.raises(ValueError, match="3 per-region candidates, 1 given"):
        head.choose(np.zeros((1, NUM_FEATURES)), np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32))


def lab(rgb) -> np.ndarray:
    return rgb2lab(np.asarray(rgb, float)[None] / 255.0)[0]


def test_training_learns_a_rule_the_features_carry_and_is_seeded():
    """Regions touching the border are white, the rest warm red unless the network's median is blue: a head trained
    on such regions picks right on nearly all of them, and the same seed gives the same head."""
    rng = np.random.default_rng(0)
    n = 600  # regions
    features = rng.normal(size=(n, NUM_FEATURES))
    border = rng.random(n) < 0.4
    features[:, FEATURE_NAMES.index("touches_border")] = border
    medians = np.where(rng.random((n, 1)) < 0.3, [[40, 60, 220]], [[120, 120, 120]]).astype(float)
    truth = np.where(border[:, None], 255.0, np.where(medians[:, 2:] > 200, medians, [[220, 60, 40]]))
    examples = RegionExamples(features, medians, np.full((n, 1 + HINT_SLOTS, 3), 255.0), truth,
                              rng.integers(50, 5000, n))
    head = train_region_head(examples, palette_size=4, hidden=16, epochs=300, seed=1)
    picks = head.choose(features, medians.astype(np.float32), examples.near.astype(np.float32))
    right = deltaE_ciede2000(lab(picks), lab(truth)) < 15
    assert right.mean() > 0.95, right.mean()
    white = deltaE_ciede2000(lab(np.full_like(truth, 255)), lab(truth)) < 15
    assert white.mean() < 0.5
    again = train_region_head(examples, palette_size=4, hidden=16, epochs=300, seed=1)
    for a, b in zip(head.weights, again.weights):
        np.testing.assert_array_equal(a, b)


def test_an_ensemble_averages_its_members_probabilities_and_round_trips(tmp_path):
    sure_red, unsure = fixed_head([4, 0, 0, 0, 0]), fixed_head([0, 2, 1, 0, 0])
    ensemble = RegionHead(tuple(np.concatenate([a, b]) for a, b in zip(sure_red.weights, unsure.weights)),
                          sure_red.feature_mean, sure_red.feature_std, PALETTE)
    assert ensemble.members == 2 and sure_red.members == 1 and ensemble.num_candidates == 5
    features = np.zeros((3, NUM_FEATURES))

    def probabilities(head):
        z = head.logits(features).astype(np.float64)
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    np.testing.assert_allclose(probabilities(ensemble), (probabilities(sure_red) + probabilities(unsure)) / 2,
                               rtol=1e-5)
    mean_logits = fixed_head([2, 1, 0.5, 0, 0])  # what averaging the scores instead would give
    assert not np.allclose(probabilities(ensemble), probabilities(mean_logits), atol=0.01)
    ensemble.save(tmp_path)
    back = RegionHead.load(tmp_path)
    assert back.members == 2
    np.testing.assert_array_equal(back.logits(features), ensemble.logits(features))


def test_a_head_file_of_one_mlp_without_the_member_axis_still_loads(tmp_path):
    """Files written before the ensemble option (every head up to output version 19's) hold one MLP's 2-D arrays."""
    from safetensors.numpy import save_file

    head = fixed_head([0, 1, 2, 3, 4])
    tensors = {f"layer{i // 2}.{'weight' if i % 2 == 0 else 'bias'}": w[0] for i, w in enumerate(head.weights)}
    tensors |= {"feature_mean": head.feature_mean, "feature_std": head.feature_std, "palette": head.palette}
    save_file(tensors, str(tmp_path / REGION_HEAD_FILE), metadata={"features": __import__("json").dumps(FEATURE_NAMES)})
    back = RegionHead.load(tmp_path)
    assert back.members == 1
    np.testing.assert_array_equal(back.logits(np.zeros((1, NUM_FEATURES))), [[0, 1, 2, 3, 4]])
    tensors["layer1.weight"] = tensors["layer1.weight"][None]  # one array with the member axis, the rest without
    save_file(tensors, str(tmp_path / REGION_HEAD_FILE), metadata={"features": __import__("json").dumps(FEATURE_NAMES)})
    with pytest.raises(WeightsError, match="inconsistent"):
        RegionHead.load(tmp_path)


def test_ensemble_members_share_the_palette_and_the_first_is_the_single_head():
    rng = np.random.default_rng(4)
    n = 300
    features = rng.normal(size=(n, NUM_FEATURES))
    medians = rng.uniform(0, 255, (n, 3))
    truth = np.where(features[:, :1] > 0, 255.0, medians)
    examples = RegionExamples(features, medians, np.full((n, 1 + HINT_SLOTS, 3), 255.0), truth,
                              rng.integers(50, 5000, n))
    single = train_region_head(examples, palette_size=4, hidden=8, epochs=20, seed=2)
    pair = train_region_head(examples, palette_size=4, hidden=8, epochs=20, seed=2, members=2)
    assert pair.members == 2
    np.testing.assert_array_equal(pair.palette, single.palette)
    for a, b in zip(pair.weights, single.weights):
        np.testing.assert_array_equal(a[:1], b)
    assert not np.array_equal(pair.weights[0][0], pair.weights[0][1])
    with pytest.raises(LinecolorError, match="members"):
        train_region_head(examples, palette_size=4, members=0)


def test_collected_examples_are_the_unhinted_regions_with_their_true_colours():
    torch.manual_seed(0)
    pipe = ColorizationPipeline(Colorizer(tiny_model_config(working_size=64, fill_guide=True)))
    pairs = [draw_pair(i, 96) for i in range(3)]
    examples = collect_examples(pipe, pairs, np.random.default_rng(0))
    assert len(examples) > 3 and examples.features.shape == (len(examples), NUM_FEATURES)
    assert np.isfinite(examples.features).all() and (examples.pixels > 0).all()
    # every true colour is a colour of the drawings' colour images
    colours = {tuple(c) for p in pairs for c in p.color.reshape(-1, 3)[::7].tolist()} | {(255, 255, 255)}
    near_a_colour = [min(np.abs(np.array(c) - t).max() for c in colours) for t in examples.truth]
    assert max(near_a_colour) <= 2


def test_a_pipeline_uses_the_head_beside_its_weights(tmp_path):
    torch.manual_seed(0)
    model = Colorizer(tiny_model_config(working_size=64, fill_guide=True))
    model.save_pretrained(tmp_path)
    line = Image.fromarray(draw_pair(2, 96).lines[0])
    plain = ColorizationPipeline.from_pretrained(tmp_path, backend="plain")
    assert plain.region_head is None
    fixed_head([0, 9, 0, 0, 0]).save(tmp_path)  # always the palette's blue
    pipe = ColorizationPipeline.from_pretrained(tmp_path, backend="plain")
    assert pipe.region_head is not None
    out = np.asarray(pipe(line, suggestion_strength=1.0, overlay_lines=False)).reshape(-1, 3)
    assert (out == [30, 30, 250]).all(axis=1).mean() > 0.9  # every region the head's blue
    assert pipe.suggest_at(line, 2, 2)[0] == "#1e1efa"
    # stochastic mode draws from the head's probabilities: seeds differ, a seed repeats
    even = fixed_head([0, 0, 0, 0, 0])
    even.save(tmp_path)
    pipe = ColorizationPipeline.from_pretrained(tmp_path, backend="plain")
    one, two, one_again = (np.asarray(pipe(line, mode="stochastic", seed=s)) for s in (1, 2, 1))
    assert not np.array_equal(one, two)
    np.testing.assert_array_equal(one, one_again)
    layered = pipe.layered(line, mode="stochastic", seed=1).flatten()
    np.testing.assert_array_equal(np.asarray(layered), one)  # every composite of one colouring draws the same
    np.testing.assert_array_equal(np.asarray(pipe.variations(line, None, [2])[0]), two)


def test_reference_mode_turns_the_head_towards_the_references_colours(tmp_path):
    torch.manual_seed(0)
    model = Colorizer(tiny_model_config(working_size=64, fill_guide=True))
    model.save_pretrained(tmp_path)
    fixed_head([0, 1, 0, 0, 0]).save(tmp_path)  # the palette's blue, a little ahead of its red
    pipe = ColorizationPipeline.from_pretrained(tmp_path, backend="plain")
    line = Image.fromarray(draw_pair(2, 96).lines[0])

    def share(image: Image.Image, rgb: list[int]) -> float:
        return float((np.asarray(image).reshape(-1, 3) == rgb).all(axis=1).mean())

    assert share(pipe(line, overlay_lines=False), [30, 30, 250]) > 0.9
    red = Image.new("RGB", (40, 30), (250, 30, 30))
    borrowed = pipe(line, reference=red, mode="reference", overlay_lines=False)
    assert share(borrowed, [250, 30, 30]) > 0.9
    np.testing.assert_array_equal(np.asarray(pipe.layered(line, reference=red, mode="reference").flatten()),
                                  np.asarray(pipe(line, reference=red, mode="reference")))
    series = pipe.page_series(reference=red, mode="reference", overlay_lines=False)
    assert share(series(line), [250, 30, 30]) > 0.9  # a series of pages borrows the reference's colours too
    assert pipe.suggest_at(line, 2, 2)[0] == "#1e1efa"  # outside reference mode the head is as it was


def test_a_reference_is_opened_once_for_a_series_of_pages(tmp_path):
    """A page series (and a CLI folder) decodes its reference when it starts: a broken one is refused before the
    first page, and pages coloured after the file is gone still borrow its colours."""
    torch.manual_seed(0)
    Colorizer(tiny_model_config(working_size=64, fill_guide=True)).save_pretrained(tmp_path)
    fixed_head([0, 1, 0, 0, 0]).save(tmp_path)
    pipe = ColorizationPipeline.from_pretrained(tmp_path, backend="plain")
    line = Image.fromarray(draw_pair(2, 96).lines[0])
    path = tmp_path / "reference.png"
    Image.new("RGB", (40, 30), (250, 30, 30)).save(path)
    by_path = np.asarray(pipe(line, reference=path, mode="reference"))
    opened = pipe.open_reference(path)
    np.testing.assert_array_equal(np.asarray(pipe(line, reference=opened, mode="reference")), by_path)
    series = pipe.page_series(reference=path, mode="reference")
    path.unlink()
    np.testing.assert_array_equal(np.asarray(series(line)), by_path)
    np.testing.assert_array_equal(np.asarray(series(line)), by_path)  # the second page too
    path.write_bytes(b"not a picture")
    with pytest.raises(LinecolorError, match="reference image"):
        pipe.page_series(reference=path, mode="reference")
    wide = pipe.open_reference(Image.new("RGB", (200, 100), (250, 30, 30)))
    small = ColorizationPipeline.from_pretrained(tmp_path, backend="plain", max_pixels=96 * 96)
    with pytest.raises(LinecolorError, match="reference image: 200×100 = 20000 pixels"):
        small(line, reference=wide, mode="reference")  # opened under a larger limit: this pipeline's still holds


def test_the_default_suggestion_strength_is_the_models(tmp_path):
    """Full strength for a head's picks; the network's own median keeps the paler default chosen for it."""
    from linecolor.limits import SUGGESTION_STRENGTH, SUGGESTION_STRENGTH_WITHOUT_HEAD

    torch.manual_seed(0)
    Colorizer(tiny_model_config(working_size=64, fill_guide=True)).save_pretrained(tmp_path)
    line = Image.fromarray(draw_pair(2, 96).lines[0])
    plain = ColorizationPipeline.from_pretrained(tmp_path, backend="plain")
    assert plain.default_suggestion_strength == SUGGESTION_STRENGTH_WITHOUT_HEAD != SUGGESTION_STRENGTH
    pale = np.asarray(plain(line))
    np.testing.assert_array_equal(pale, np.asarray(plain(line, suggestion_strength=SUGGESTION_STRENGTH_WITHOUT_HEAD)))
    assert not np.array_equal(pale, np.asarray(plain(line, suggestion_strength=SUGGESTION_STRENGTH)))
    fixed_head([0, 9, 0, 0, 0]).save(tmp_path)
    headed = ColorizationPipeline.from_pretrained(tmp_path, backend="plain")
    assert headed.default_suggestion_strength == SUGGESTION_STRENGTH
    np.testing.assert_array_equal(np.asarray(headed(line)), np.asarray(headed(line, suggestion_strength=1.0)))
    np.testing.assert_array_equal(np.asarray(headed.layered(line).flatten()), np.asarray(headed(line)))
    np.testing.assert_array_equal(np.asarray(plain.page_series()(line)), pale)  # every entry point resolves None
    np.testing.assert_array_equal(np.asarray(plain.variations(line, None, [3])[0]),
                                  np.asarray(plain(line, mode="stochastic", seed=3,
                                                   suggestion_strength=SUGGESTION_STRENGTH_WITHOUT_HEAD)))
    with pytest.raises(LinecolorError, match="suggestion_strength"):
        headed(line, suggestion_strength=1.5)  # a bad number is still refused, not replaced by the default


def test_collected_examples_round_trip_through_their_cache_file(tmp_path):
    rng = np.random.default_rng(2)
    examples = RegionExamples(rng.normal(size=(5, NUM_FEATURES)), rng.uniform(0, 255, (5, 3)),
                              rng.uniform(0, 255, (5, 3)), rng.uniform(0, 255, (5, 3)), rng.integers(1, 99, 5),
                              provenance="five drawings")
    examples.save(tmp_path / "ex.npz")
    back = RegionExamples.load(tmp_path / "ex.npz")
    assert back.provenance == "five drawings"
    for field in ("features", "medians", "near", "truth", "pixels"):
        np.testing.assert_array_equal(getattr(back, field), getattr(examples, field))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(LinecolorError, match="not a region-head example file"):
        RegionExamples.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "old.npz", features=np.zeros((2, 3)), medians=np.zeros((2, 3)), near=np.zeros((2, 3)),
             truth=np.zeros((2, 3)), pixels=np.ones(2))
    with pytest.raises(LinecolorError, match="other region features"):
        RegionExamples.load(tmp_path / "old.npz")


def test_a_drawing_that_cannot_be_rendered_is_skipped_not_fatal():
    import io

    from linecolor.training.region_head import sample_pairs

    class Record:
        source = "test"

        def __init__(self, name, fails):
            self.name, self.fails = name, fails

        def load(self, size, extra_xdog=False):
            if self.fails:
                raise LinecolorError("cairosvg could not render it")
            return draw_pair(0, size)

    log = io.StringIO()
    pairs = list(sample_pairs([Record("a", False), Record("b", True), Record("c", False)], None, 64, file=log))
    assert len(pairs) == 2 and "skipped test b: cairosvg could not render it" in log.getvalue()
