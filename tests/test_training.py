"""The trainer: it learns, resumes exactly, survives kills and signals, and never saves a NaN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from linecolor.config import LossConfig
from linecolor.errors import InputImageError, LinecolorError
from linecolor.models.colorizer import Colorizer
from linecolor.training import checkpoint as ckpt
from linecolor.training import trainer as trainer_module
from linecolor.training.dataset import PositionSampler, SampleSpec, TrainingDataset
from linecolor.training.trainer import export, lr_lambda, train

from conftest import PYTHON, SyntheticPairs, tiny_experiment

HELPER = Path(__file__).parent / "helpers" / "train_synthetic.py"


def _fixed_batch(pairs, config, n=4):
    spec = SampleSpec(config.data.image_size, config.hints, config.augment, True, seed=123)
    ds = TrainingDataset(pairs, spec)
    samples = [ds[i] for i in range(n)]
    return torch.stack([s["cond"] for s in samples]), torch.stack([s["target"] for s in samples])


def _recon_error(model: Colorizer, cond, target) -> float:
    """L1 of the VAE reconstruction (z = μ of the target's style, as in training without the noise)."""
    model.eval()
    with torch.no_grad():
        mu, _ = model.encode_style(target)
        return float((model(cond, mu) - target).abs().mean())


def test_tiny_model_learns_synthetic_pairs(tmp_path):
    pairs = SyntheticPairs(8, 64)
    config = tiny_experiment(steps=200, batch_size=4, checkpoint_every=200, log_every=50,
                             ema_decay=0.0, lr_generator=2e-3, warmup_steps=10)
    config = replace(config, loss=LossConfig(gan_start_step=10**9))  # reconstruction + KL only: fast, stable
    cond, target = _fixed_batch(pairs, config)
    torch.manual_seed(config.train.seed)
    before = _recon_error(Colorizer(config.model), cond, target)  # same init as the trainer (same seed)
    result = train(config, tmp_path / "run", progress=False, pairs=pairs)
    assert result.status == "completed" and result.final_step == 200
    model = Colorizer.from_pretrained(export(tmp_path / "run", tmp_path / "exported"))
    after = _recon_error(model, cond, target)
    assert after < 0.5 * before, f"reconstruction L1 went {before:.3f} → {after:.3f}"


def test_resume_is_exact(tmp_path):
    """2 + 2 steps (resumed from the step-2 checkpoint) give the same weights and losses as 4 straight steps."""
    pairs = SyntheticPairs(8, 64)
    config = tiny_experiment(steps=4, checkpoint_every=2, keep_checkpoints=5, log_every=1)
    train(config, tmp_path / "straight", progress=False, pairs=pairs)
    straight = ckpt.load_checkpoint(tmp_path / "straight" / "checkpoints" / "step-00000004")[0]

    train(config, tmp_path / "resumed", progress=False, pairs=pairs)
    import shutil

    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-00000004")  # as if killed after step 2
    metrics = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "resumed" / "metrics.jsonl").write_text("\n".join(metrics[:2]) + "\n")
    result = train(config, tmp_path / "resumed", progress=False, pairs=pairs)
    assert result.start_step == 2 and result.final_step == 4
    resumed = ckpt.load_checkpoint(tmp_path / "resumed" / "checkpoints" / "step-00000004")[0]
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(straight[k], resumed[k], rtol=0, atol=0, msg=f"tensor {k} differs")
    a = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["g_total"] for r in a] == [r["g_total"] for r in b]


def test_gan_terms_run_and_are_logged(tmp_path):
    config = tiny_experiment(steps=2, log_every=1)
    train(config, tmp_path, progress=False, pairs=SyntheticPairs(4, 64))
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("d_hinge", "g_hinge", "feature_matching", "reconstruction", "kl", "g_total", "images_per_s"):
        assert key in record and np.isfinite(record[key]), key
    assert (tmp_path / "tensorboard").is_dir()


def test_nan_loss_never_reaches_a_checkpoint(tmp_path, monkeypatch):
    config = tiny_experiment(steps=6, checkpoint_every=2, keep_checkpoints=5)
    calls = {"n": 0}
    real = trainer_module.reconstruction_loss

    def poisoned(output, target, kind):
        calls["n"] += 1
        value = real(output, target, kind)
        return value * float("nan") if calls["n"] > 2 else value

    monkeypatch.setattr(trainer_module, "reconstruction_loss", poisoned)
    monkeypatch.setattr(trainer_module, "MAX_CONSECUTIVE_NONFINITE", 3)
    with pytest.raises(LinecolorError, match="non-finite"):
        train(config, tmp_path, progress=False, pairs=SyntheticPairs(4, 64))
    saved = ckpt.list_checkpoints(tmp_path)
    assert [c.step for c in saved] == [2, 4], "the run stops after 3 consecutive NaN steps (3, 4, 5)"
    good = ckpt.load_checkpoint(saved[0].path)[0]
    later = ckpt.load_checkpoint(saved[1].path)[0]
    assert all(torch.isfinite(v).all() for v in later.values() if v.is_floating_point())
    # Steps 3 and 4 had NaN losses: no update may have been applied, so step 4 holds step 2's weights.
    for k in good:
        if k.startswith(("colorizer.", "discriminator.")) and "_u" not in k and "_v" not in k:
            assert torch.equal(good[k], later[k]), k


class FlakyPairs(SyntheticPairs):
    """Every ``every``-th pair cannot be decoded."""

    def __init__(self, every: int):
        super().__init__(8, 64)
        self.every = every

    def __getitem__(self, i):
        if i % self.every == 0:
            raise InputImageError(f"pair {i}: not a decodable image")
        return super().__getitem__(i)


def test_undecodable_samples_are_skipped_and_counted(tmp_path):
    config = tiny_experiment(steps=3)
    config = replace(config, data=replace(config.data, max_bad_fraction=0.5))
    result = train(config, tmp_path / "ok", progress=False, pairs=FlakyPairs(every=4))
    assert result.status == "completed" and result.bad_samples > 0
    config = replace(config, data=replace(config.data, max_bad_fraction=0.05))
    with pytest.raises(LinecolorError, match="could not be decoded"):
        train(config, tmp_path / "too-many", progress=False, pairs=FlakyPairs(every=2))


def test_sampler_positions_are_disjoint_across_ranks():
    a = list(PositionSampler(3, 5, batch_size=2, rank=0, world_size=2))
    b = list(PositionSampler(3, 5, batch_size=2, rank=1, world_size=2))
    assert a == [12, 13, 16, 17] and b == [14, 15, 18, 19]


def test_lr_schedule_warms_up_then_anneals():
    f = lr_lambda(10, 100, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) < f(20) and f(100) == pytest.approx(0.1)


def test_resume_never_refuses_existing_run(tmp_path):
    config = tiny_experiment(steps=2)
    train(config, tmp_path, progress=False, pairs=SyntheticPairs(4, 64))
    with pytest.raises(LinecolorError, match="already has checkpoints"):
        train(config, tmp_path, resume="never", progress=False, pairs=SyntheticPairs(4, 64))
    assert train(config, tmp_path, progress=False, pairs=SyntheticPairs(4, 64)).status == "already-complete"


def test_corrupted_newest_checkpoint_is_skipped_by_resume_auto(tmp_path):
    config = tiny_experiment(steps=4, checkpoint_every=2, keep_checkpoints=5)
    train(config, tmp_path, progress=False, pairs=SyntheticPairs(4, 64))
    newest = tmp_path / "checkpoints" / "step-00000004" / "weights.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    assert ckpt.find_latest_checkpoint(tmp_path).step == 2


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


@pytest.mark.slow
def test_sigkill_then_resume_auto_continues(tmp_path):
    run = tmp_path / "run"
    with subprocess.Popen([PYTHON, str(HELPER), str(run), "400", "2"], env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(c.step >= 4 for c in ckpt.list_checkpoints(run)):
            time.sleep(0.05)
        proc.kill()
        output = proc.communicate(timeout=30)[0].decode()
    saved = ckpt.list_checkpoints(run)
    assert saved, output
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith("step-") and
                not (p / ckpt.COMMIT_MARKER).is_file()], "a partial checkpoint under a final name"
    killed_at = ckpt.find_latest_checkpoint(run).step
    assert killed_at < 400
    out = subprocess.run([PYTHON, str(HELPER), str(run), str(killed_at + 4), "2"], env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"start={killed_at} final={killed_at + 4}" in out.stdout


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_checkpoint_write_loses_nothing_committed(tmp_path):
    run = tmp_path / "run"
    env = dict(_env(), LINECOLOR_TEST_KILL_IN_SAVE="4")
    out = subprocess.run([PYTHON, str(HELPER), str(run), "6", "2"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == -signal.SIGKILL, out.stdout + out.stderr
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "step-00000004" not in names and any(n.startswith(".tmp-step-00000004") for n in names), names
    assert ckpt.find_latest_checkpoint(run).step == 2
    assert ckpt.verify_checkpoint(run / "checkpoints" / "step-00000002") == 2  # the previous one loads
    tensors, state, _ = ckpt.load_checkpoint(run / "checkpoints" / "step-00000002")
    assert tensors and state["step"] == 2
    again = subprocess.run([PYTHON, str(HELPER), str(run), "6", "2"], env=_env(), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "start=2 final=6" in again.stdout, again.stdout + again.stderr
    assert ckpt.find_latest_checkpoint(run).step == 6
    assert not list((run / "checkpoints").glob(".tmp-step-*")), "the dead writer's partial was not cleaned up"


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    with subprocess.Popen([PYTHON, str(HELPER), str(run), "100000", "100000"], env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (run / "metrics.jsonl").is_file():
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "status=interrupted" in out
    saved = ckpt.find_latest_checkpoint(run)
    assert saved is not None and 0 < saved.step < 100000


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_with_loader_workers_still_saves(tmp_path):
    """``timeout``, Ctrl-C and service managers signal the whole process group: the loader's workers must leave the
    signal to the training process (which saves), not die and take the run down without a checkpoint."""
    run = tmp_path / "run"
    env = dict(_env(), LINECOLOR_TEST_WORKERS="2")
    with subprocess.Popen([PYTHON, str(HELPER), str(run), "100000", "100000"], env=env, start_new_session=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (run / "metrics.jsonl").is_file():
            time.sleep(0.05)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "status=interrupted" in out
    saved = ckpt.find_latest_checkpoint(run)
    assert saved is not None and 0 < saved.step < 100000


@pytest.mark.slow
def test_torchrun_two_process_gloo(tmp_path):
    run = tmp_path / "run"
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HELPER), str(run), "3", "3"]
    # Own process group: if anything hangs, the workers die with the launcher instead of outliving the test.
    with subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert stdout.count("RESULT status=completed start=0 final=3") == 2
    assert [c.step for c in ckpt.list_checkpoints(run)] == [3]
    model = Colorizer.from_pretrained(export(run, tmp_path / "exported"))
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_random_kills_with_resume_auto_always_reach_the_target(tmp_path):
    """SIGKILL at random moments (checkpoints every step, so many kills land inside a write): every time, the
    newest committed checkpoint verifies and nothing partial sits under a final name; then the same command
    finishes the run."""
    run, target = tmp_path / "run", 12
    rng = np.random.default_rng(2026)
    kills = 0
    for _ in range(6):
        with subprocess.Popen([PYTHON, str(HELPER), str(run), str(target), "1"], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            start = ckpt.find_latest_checkpoint(run)
            start_step = start.step if start else 0
            deadline = time.monotonic() + 120
            # Wait until this attempt made progress, then kill it after a random extra delay.
            while time.monotonic() < deadline and proc.poll() is None:
                latest = ckpt.find_latest_checkpoint(run)
                if latest and latest.step > start_step:
                    break
                time.sleep(0.01)
            time.sleep(float(rng.uniform(0, 0.3)))
            if proc.poll() is None:
                proc.kill()
                kills += 1
            out = proc.communicate(timeout=60)[0]
        for child in (run / "checkpoints").iterdir():
            if child.name.startswith("step-"):
                assert (child / ckpt.COMMIT_MARKER).is_file(), f"partial checkpoint {child.name}"
        latest = ckpt.find_latest_checkpoint(run)
        assert latest is not None, out
        ckpt.load_checkpoint(latest.path)  # verifies every file's SHA-256
        if latest.step == target:
            break
    assert kills >= 3, "the test must actually kill the trainer several times"
    final = subprocess.run([PYTHON, str(HELPER), str(run), str(target), "1"], env=_env(), capture_output=True,
                           text=True, timeout=180)
    assert final.returncode == 0, final.stdout + final.stderr
    assert f"final={target}" in final.stdout
    assert ckpt.find_latest_checkpoint(run).step == target


def test_style_dropout_zeroes_the_latent_of_some_samples(tmp_path, monkeypatch):
    seen = []
    real_forward = Colorizer.forward

    def spy(self, cond, z=None):
        if self.training and z is not None:
            seen.append((z.detach().abs().sum(dim=1) == 0).tolist())
        return real_forward(self, cond, z)

    monkeypatch.setattr(Colorizer, "forward", spy)
    config = tiny_experiment(steps=4, batch_size=8)
    config = replace(config, loss=replace(config.loss, style_dropout=0.5))
    train(config, tmp_path, progress=False, pairs=SyntheticPairs(8, 64))
    flat = [v for batch in seen for v in batch]
    assert 0 < sum(flat) < len(flat), "some but not all samples must train with z = 0"


def test_nonfinite_gradients_with_a_finite_loss_skip_the_update(tmp_path, monkeypatch):
    """A finite loss can still produce inf gradients; such a step must change no weight."""
    config = tiny_experiment(steps=3, checkpoint_every=1, keep_checkpoints=5)
    config = replace(config, loss=replace(config.loss, gan_start_step=10**9))
    real = trainer_module.reconstruction_loss
    calls = {"n": 0}

    class InfGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad * float("inf")

    def poisoned(output, target, kind):
        calls["n"] += 1
        value = real(output, target, kind)
        return InfGrad.apply(value) if calls["n"] == 3 else value

    monkeypatch.setattr(trainer_module, "reconstruction_loss", poisoned)
    result = train(config, tmp_path, progress=False, pairs=SyntheticPairs(4, 64))
    assert result.skipped_nonfinite == 1
    step2 = ckpt.load_checkpoint(tmp_path / "checkpoints" / "step-00000002")[0]
    step3 = ckpt.load_checkpoint(tmp_path / "checkpoints" / "step-00000003")[0]
    changed = [k for k in step2 if k.startswith("colorizer.") and "_u" not in k and "_v" not in k
               and not torch.equal(step2[k], step3[k])]
    assert not changed, f"weights changed on a skipped step: {changed[:3]}"
    assert all(torch.isfinite(v).all() for v in step3.values() if v.is_floating_point())


def test_hint_adherence_loss_looks_only_at_hinted_pixels():
    from linecolor.training.losses import hint_adherence_loss

    cond = torch.zeros(2, 5, 8, 8)
    cond[0, 4, 2, 3] = 1
    cond[0, 1:4, 2, 3] = torch.tensor([1.0, -1.0, 0.5])
    output = torch.full((2, 3, 8, 8), 0.25)
    # Only the one hinted pixel counts: |0.25-1| + |0.25+1| + |0.25-0.5| over its 3 channels.
    assert torch.isclose(hint_adherence_loss(output, cond), torch.tensor((0.75 + 1.25 + 0.25) / 3))
    output[0, :, 2, 3] = cond[0, 1:4, 2, 3]
    output[1] = 7.0  # far off, but sample 1 has no hints
    assert hint_adherence_loss(output, cond) == 0
    assert hint_adherence_loss(output, torch.zeros(2, 5, 8, 8)) == 0  # no hints at all: 0, not NaN


def test_training_with_the_hint_adherence_loss_logs_it(tmp_path):
    config = tiny_experiment(steps=2)
    config = replace(config, loss=replace(config.loss, hint_adherence=5.0),
                     model=replace(config.model, generator=replace(config.model.generator, fill_guide=True)))
    result = train(config, tmp_path / "run", pairs=SyntheticPairs(4, 64), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.final_step == 2 and any("hint_adherence" in json.dumps(r) for r in rows)


def test_region_colour_loss_is_the_area_weighted_error_of_region_means():
    from linecolor.training.losses import region_colour_loss, region_labels

    line = torch.ones(1, 8, 8)
    line[0, :, 4] = -1  # a vertical line: regions of 8×4 and 8×3 pixels
    labels = region_labels(line)
    assert labels.max() == 2 and labels[0, 0, 4] == 0
    target = torch.zeros(1, 3, 8, 8)
    target[0, :, :, :4] = 1.0
    output = torch.zeros(1, 3, 8, 8)
    output[0, :, :, :4] = torch.linspace(0, 2, 4)  # wrong pixel by pixel, right on average in the left region
    assert float(region_colour_loss(output, target, labels)) == pytest.approx(0.0, abs=1e-6)
    output[0, :, :, 5:] = 0.5  # the right region's mean is off by 0.5, on 24 of 56 paper pixels
    assert float(region_colour_loss(output, target, labels)) == pytest.approx(0.5 * 24 / 56, abs=1e-6)


def test_training_with_gaps_fade_and_region_colour_runs(tmp_path):
    """The stage-4 recipe's additions run end to end: gapped, faded line input with a clean fill guide, and the
    region-colour loss in the logged losses."""
    import dataclasses

    from linecolor.config import AugmentConfig

    config = tiny_experiment()
    config = dataclasses.replace(
        config, augment=AugmentConfig(line_gaps=4, line_fade=0.3),
        loss=dataclasses.replace(config.loss, region_colour=5.0, gan_start_step=100),
        model=dataclasses.replace(config.model, generator=dataclasses.replace(config.model.generator,
                                                                             fill_guide=True)))
    result = train(config, tmp_path / "run", pairs=SyntheticPairs(8), progress=False)
    assert result.final_step == config.train.steps
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("region_colour" in row for row in rows)


def _fill_guided(config):
    return replace(config, model=replace(config.model, generator=replace(config.model.generator, fill_guide=True)))


def test_unhinted_paper_is_paper_outside_the_hinted_regions():
    from linecolor.training.losses import unhinted_paper

    cond = torch.zeros(1, 9, 4, 4)
    cond[0, 0] = 1.0
    cond[0, 0, :, 1] = -1.0  # a line in column 1
    cond[0, 8, :, 0] = 1.0  # column 0 is a hinted region
    mask = unhinted_paper(cond)
    assert mask.shape == (1, 1, 4, 4)
    assert mask[0, 0, :, 0].sum() == 0 and mask[0, 0, :, 1].sum() == 0 and mask[0, 0, :, 2:].sum() == 8
    with pytest.raises(ValueError, match="fill-guide"):
        unhinted_paper(cond[:, :5])


def test_diversity_loss_asks_for_outputs_that_move_with_the_latent_on_unhinted_paper_only():
    from linecolor.training.losses import diversity_loss

    z1, z2 = torch.zeros(2, 8), torch.ones(2, 8)  # latent L1 distance 1 per sample
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :, 2:] = 1.0  # unhinted paper: the right half
    first = torch.zeros(2, 3, 4, 4)
    second = torch.zeros(2, 3, 4, 4)
    assert float(diversity_loss(first, second, z1, z2, mask, 0.25)) == pytest.approx(0.25)  # same output: full loss
    second[:, :, :, :2] = 1.0  # a change only where the mask is off does not count
    assert float(diversity_loss(first, second, z1, z2, mask, 0.25)) == pytest.approx(0.25)
    second[:, :, :, 2:] = 0.1  # moved by 0.1 per unit of latent distance: 0.15 short of the target
    assert float(diversity_loss(first, second, z1, z2, mask, 0.25)) == pytest.approx(0.15, abs=1e-6)
    second[:, :, :, 2:] = 0.5  # past the target the hinge stops pushing
    assert float(diversity_loss(first, second, z1, z2, mask, 0.25)) == 0.0
    empty = torch.zeros_like(mask)
    assert float(diversity_loss(first, first, z1, z2, empty, 0.25)) == 0.0  # nothing unhinted: nothing to ask


def test_training_with_the_diversity_term_logs_it_and_holds_hinted_regions(tmp_path):
    config = _fill_guided(tiny_experiment(steps=2))
    config = replace(config, loss=replace(config.loss, diversity=10.0, gan_start_step=100))
    result = train(config, tmp_path / "run", pairs=SyntheticPairs(4, 64), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.final_step == 2 and any("diversity" in r and "varied_hinted" in r for r in rows)


def test_the_diversity_latent_cap_bounds_what_a_far_pair_is_asked_for():
    from linecolor.training.losses import diversity_loss

    z1, z2 = torch.zeros(1, 8), torch.full((1, 8), 4.0)  # a slider pair 4 apart
    mask = torch.ones(1, 1, 2, 2)
    first, second = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.4)
    # 0.4 apart: 0.1 per unit of the full distance (0.15 short), 0.4 per unit of a distance capped at 1 (met).
    assert float(diversity_loss(first, second, z1, z2, mask, 0.25)) == pytest.approx(0.15, abs=1e-6)
    assert float(diversity_loss(first, second, z1, z2, mask, 0.25, latent_cap=1.0)) == 0.0


def test_region_flattened_gives_each_pixel_its_regions_mean():
    from linecolor.training.losses import region_flattened

    output = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    labels = torch.tensor([[[1, 1], [0, 2]], [[3, 3], [3, 0]]])
    flat = region_flattened(output, labels)
    assert flat.shape == output.shape
    assert torch.allclose(flat[0, :, 0, 0], output[0, :, 0, :].mean(dim=1))  # region 1: the top row of sample 0
    assert torch.equal(flat[0, :, 0, 0], flat[0, :, 0, 1])
    assert torch.equal(flat[0, :, 1, 1], output[0, :, 1, 1])  # region 2: one pixel
    assert torch.allclose(flat[1, :, 1, 0], (output[1, :, 0, 0] + output[1, :, 0, 1] + output[1, :, 1, 0]) / 3)


def test_prior_diversity_latents_pair_two_seeds_and_two_slider_points():
    from linecolor.limits import MAX_LATENT_SHIFT
    from linecolor.training.trainer import diversity_latents

    first, second = diversity_latents((6, 16), torch.Generator().manual_seed(3))
    assert first.shape == second.shape == (6, 16)
    # The first half: independent normal draws (not constant along the latent).
    assert (first[:3].std(dim=1) > 0.3).all() and (second[:3].std(dim=1) > 0.3).all()
    assert not torch.allclose(first[:3], second[:3])
    # The second half: s·1 points of the latent-shift slider, within its range.
    for half in (first[3:], second[3:]):
        assert torch.equal(half, half[:, :1].expand(-1, 16))
        assert half.abs().max() <= MAX_LATENT_SHIFT
    again = diversity_latents((6, 16), torch.Generator().manual_seed(3))
    assert torch.equal(again[0], first) and torch.equal(again[1], second)  # seeded: repeats exactly


def test_training_with_prior_region_diversity_pairs_logs_the_term(tmp_path):
    config = _fill_guided(tiny_experiment(steps=2))
    config = replace(config, loss=replace(config.loss, diversity=10.0, diversity_pair="prior", diversity_latent_cap=1.5,
                                          diversity_regions=True, gan_start_step=100))
    result = train(config, tmp_path / "run", pairs=SyntheticPairs(4, 64), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.final_step == 2 and any(r.get("diversity", 0) > 0 for r in rows)


def test_diversity_pair_and_cap_are_checked():
    from linecolor.config import LossConfig
    from linecolor.errors import ConfigError

    with pytest.raises(ConfigError, match="diversity_pair"):
        LossConfig(diversity_pair="both")
    with pytest.raises(ConfigError, match="diversity_latent_cap"):
        LossConfig(diversity_latent_cap=0.0)


def test_the_diversity_term_needs_the_fill_guide_and_a_style_latent():
    from linecolor.config import ExperimentConfig
    from linecolor.errors import ConfigError

    config = tiny_experiment()
    with pytest.raises(ConfigError, match="diversity"):
        ExperimentConfig(model=config.model, loss=replace(config.loss, diversity=1.0))
    ExperimentConfig(model=_fill_guided(config).model, loss=replace(config.loss, diversity=1.0))  # accepted


def test_collate_labels_the_regions_of_each_samples_line():
    from linecolor.training.dataset import collate
    from linecolor.training.losses import region_labels

    pairs = SyntheticPairs(4, 32)
    config = tiny_experiment()
    spec = SampleSpec(32, config.hints, config.augment, True, seed=1)
    ds = TrainingDataset(pairs, spec)
    batch = collate([ds[i] for i in range(3)])
    assert batch["labels"].shape == (3, 32, 32)
    assert torch.equal(batch["labels"], region_labels(batch["cond"][:, 0]))
    assert int(batch["labels"].max()) > 3  # numbered across the batch, not restarting per sample
