"""The training loop: GAN + feature matching + reconstruction + KL (+ perceptual), TTUR Adam, warm-up/cosine,
EMA, atomic checkpoints with exact resume, TensorBoard, and DistributedDataParallel under ``torchrun``.

The same command starts a run and restarts it: with ``resume="auto"`` the newest committed checkpoint of the run
directory is loaded (``torchrun --max-restarts`` relies on exactly that). SIGTERM/SIGINT ask the loop to save at the
next step boundary and return; a non-finite loss skips the update and never reaches a checkpoint.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from linecolor.config import ExperimentConfig, from_dict, to_dict
from linecolor.errors import ConfigError, LinecolorError, WeightsError
from linecolor.inference.pipeline import DEFAULT_WEIGHTS_DIR
from linecolor.limits import MAX_LATENT_SHIFT
from linecolor.models.colorizer import Colorizer
from linecolor.models.discriminator import MultiScaleDiscriminator
from linecolor.models.style_encoder import kl_divergence, reparameterize
from linecolor.training import checkpoint as ckpt
from linecolor.training.dataset import (
    ConcatPairs,
    PositionSampler,
    SampleSpec,
    TrainingDataset,
    collate,
)
from linecolor.training.losses import (
    diversity_loss,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    hint_adherence_loss,
    masked_l1,
    region_colour_loss,
    region_flattened,
    region_labels,
    reconstruction_loss,
    unhinted_paper,
)
from linecolor.version import __version__

MAX_CONSECUTIVE_NONFINITE = 20


@dataclass
class TrainResult:
    """What a call to :func:`train` did."""

    run_dir: Path
    start_step: int
    final_step: int
    status: str
    """``completed``, ``interrupted`` (a signal asked to stop; state saved) or ``already-complete``."""
    last_checkpoint: Path | None
    skipped_nonfinite: int
    bad_samples: int
    images_per_second: float


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {name!r} but CUDA is not available on this machine")
    return device


def lr_lambda(warmup: int, total: int, min_fraction: float):
    """Linear warm-up to 1, then cosine annealing to ``min_fraction`` at ``total``."""

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


class _StopFlag:
    """SIGTERM/SIGINT set a flag the loop checks between steps (installed only in the main thread)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def build_pairs(dirs: tuple[str, ...], split: str):
    """Concatenate the ``split`` of every prepared directory."""
    from linecolor.data.datasets import PreparedArrays

    if not dirs:
        raise ConfigError("data.train_dirs is empty: give at least one directory made by `linecolor prepare`")
    return ConcatPairs([PreparedArrays(d, split) for d in dirs])


INIT_WEIGHTS_DEFAULT = "default"
"""The name ``--init-weights`` takes for the bundled weights (fine-tuning the model the studio ships)."""


def resolve_init_weights(init_weights: str | Path) -> Path:
    """The model directory ``init_weights`` names: :data:`INIT_WEIGHTS_DEFAULT` is the bundled model."""
    if str(init_weights) == INIT_WEIGHTS_DEFAULT:
        return DEFAULT_WEIGHTS_DIR
    return Path(init_weights)


def train(config: ExperimentConfig, run_dir: str | Path, *, resume: str = "auto",
          init_weights: str | Path | None = None, progress: bool = True, pairs=None) -> TrainResult:
    """Train (or continue training) a colorizer in ``run_dir``.

    Args:
        config: the whole experiment; saved into every checkpoint and ``run_dir/config.json``.
        resume: ``auto`` (newest committed checkpoint, else start fresh), ``never`` (refuse if checkpoints
            exist) or a checkpoint directory path.
        init_weights: an exported model directory to start the generator from (staged training, fine-tuning;
            optimiser state restarts), or ``"default"`` for the bundled weights (:func:`resolve_init_weights`).
            Ignored when resuming from a checkpoint.
        progress: show a tqdm bar (rank 0 only).
        pairs: an in-memory pair source to train on instead of ``config.data.train_dirs`` (tests, notebooks).
    """
    run_dir = Path(run_dir)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = resolve_device(config.train.device)
    if distributed:
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    else:
        rank, world = 0, 1
    is_main = rank == 0
    try:
        return _train(config, run_dir, resume, init_weights, progress and is_main, pairs, device, rank, world)
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: ExperimentConfig, run_dir: Path, resume: str, init_weights, progress: bool, pairs,
           device: torch.device, rank: int, world: int) -> TrainResult:
    tc, is_main = config.train, rank == 0
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest convolutions once
    torch.manual_seed(tc.seed)  # construction-time randomness (weight init, spectral-norm vectors)

    model = Colorizer(config.model).to(device)
    disc = MultiScaleDiscriminator(config.discriminator, cond_channels=config.model.generator.in_channels).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if tc.ema_decay > 0 else None
    perceptual = None
    if config.loss.perceptual > 0:
        from linecolor.models.perceptual import PerceptualLoss, ResNetFeatures

        perceptual = PerceptualLoss(ResNetFeatures.from_file(config.loss.perceptual_weights)).to(device)

    opt_g = torch.optim.Adam(model.parameters(), lr=tc.lr_generator, betas=(tc.beta1, tc.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=tc.lr_discriminator, betas=(tc.beta1, tc.beta2))
    # The learning rate is a pure function of the step (set before every update), so it needs no saved state.
    schedule = lr_lambda(tc.warmup_steps, tc.steps, tc.min_lr_fraction)
    z_generator = torch.Generator(device="cpu")
    z_generator.manual_seed(tc.seed * 1000 + rank)

    config_dict = {"_linecolor_version": __version__, **to_dict(config)}
    start_step, counters = 0, {"skipped_nonfinite": 0, "bad_samples": 0, "samples_seen": 0}
    if is_main:
        for partial in ckpt.remove_stale_partials(run_dir):  # left by a writer killed mid-save; never loadable
            print(f"removed the partial checkpoint {partial.name} of a run that died while saving", file=sys.stderr)
    resume_path = _resume_path(run_dir, resume)
    if resume_path is not None:
        tensors, state, saved_config = ckpt.load_checkpoint(resume_path)
        _check_compatible(saved_config, config)
        model.load_state_dict(ckpt.split_prefix(tensors, "colorizer"), strict=True)
        disc.load_state_dict(ckpt.split_prefix(tensors, "discriminator"), strict=True)
        if ema is not None:
            ema.load_state_dict(ckpt.split_prefix(tensors, "ema"), strict=True)
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        z_generator.set_state(state["z_generator"][rank] if rank < len(state["z_generator"]) else
                              state["z_generator"][0])
        torch.set_rng_state(state["torch_rng"])
        start_step = int(state["step"])
        counters.update({k: int(v) for k, v in state["counters"].items()})
    elif init_weights is not None:
        loaded = Colorizer.from_pretrained(resolve_init_weights(init_weights))
        if to_dict(loaded.config) != to_dict(config.model):
            raise ConfigError(f"--init-weights {init_weights}: its model config differs from this run's model config")
        model.load_state_dict(loaded.state_dict(), strict=True)
        if ema is not None:
            ema.load_state_dict(loaded.state_dict(), strict=True)

    if start_step >= tc.steps:
        last = ckpt.find_latest_checkpoint(run_dir)
        return TrainResult(run_dir, start_step, start_step, "already-complete", last and last.path,
                           counters["skipped_nonfinite"], counters["bad_samples"], 0.0)

    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(run_dir / "config.json", config_dict)

    if pairs is None:
        pairs = build_pairs(config.data.train_dirs, "train")
    spec = SampleSpec(config.data.image_size, config.hints, config.augment,
                      config.model.generator.binarize_line, tc.seed, config.model.generator.fill_guide)
    dataset = TrainingDataset(pairs, spec)
    loader = DataLoader(dataset, batch_size=tc.batch_size, collate_fn=collate,
                        sampler=PositionSampler(start_step, tc.steps, tc.batch_size, rank, world),
                        num_workers=config.data.num_workers, persistent_workers=False,
                        pin_memory=device.type == "cuda", worker_init_fn=_ignore_stop_signals)

    g_model: nn.Module = model
    d_model: nn.Module = disc
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        g_model = DistributedDataParallel(model, device_ids=ids)
        d_model = DistributedDataParallel(disc, device_ids=ids)

    writer = _summary_writer(run_dir) if is_main else None
    metrics_file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8") if is_main else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=tc.steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                              enabled=tc.bf16 and device.type == "cuda")
    step = start_step
    last_ckpt: Path | None = None
    status = "completed"
    consecutive_bad = 0
    t0, images = time.perf_counter(), 0
    model.train()
    disc.train()

    def save(at_step: int) -> Path | None:
        nonlocal last_ckpt
        if is_main:
            last_ckpt = _save(run_dir, at_step, model, disc, ema, opt_g, opt_d, z_generator,
                              counters, config_dict, tc.keep_checkpoints, world)
        if world > 1:
            dist.barrier()
        return last_ckpt

    try:
        with _StopFlag() as stop:
            for batch in loader:
                counters["bad_samples"] += batch["num_bad"]
                counters["samples_seen"] += batch["num_bad"] + (0 if batch["cond"] is None else len(batch["cond"]))
                bad_frac = counters["bad_samples"] / max(1, counters["samples_seen"])
                if counters["bad_samples"] and bad_frac > config.data.max_bad_fraction:
                    raise LinecolorError(
                        f"{counters['bad_samples']} of {counters['samples_seen']} training samples could not be decoded "
                        f"({bad_frac:.1%} > data.max_bad_fraction {config.data.max_bad_fraction:.1%}); "
                        f"last error: {batch['errors'][-1] if batch['errors'] else 'n/a'}")
                if batch["cond"] is None:
                    step += 1
                    continue
                cond = batch["cond"].to(device, non_blocking=True)
                target = batch["target"].to(device, non_blocking=True)
                use_gan = step >= config.loss.gan_start_step and (config.loss.gan > 0 or config.loss.feature_matching > 0)

                for opt, base in ((opt_g, tc.lr_generator), (opt_d, tc.lr_discriminator)):
                    for group in opt.param_groups:
                        group["lr"] = base * schedule(step)
                labels = batch["labels"].to(device, non_blocking=True)
                losses = train_step(config, g_model, d_model, model, perceptual, opt_g, opt_d, cond, target,
                                     z_generator, autocast, use_gan, labels=labels)
                if losses is None:
                    counters["skipped_nonfinite"] += 1
                    consecutive_bad += 1
                    if consecutive_bad >= MAX_CONSECUTIVE_NONFINITE:
                        raise LinecolorError(f"{consecutive_bad} consecutive non-finite losses at step {step}; stopping "
                                             f"without saving (last good checkpoint: {last_ckpt or 'none'})")
                else:
                    consecutive_bad = 0
                    if ema is not None:
                        ema_update(ema, model, tc.ema_decay)
                step += 1
                images += len(cond) * world

                if is_main and losses is not None:
                    if step % tc.log_every == 0 or step == tc.steps:
                        ips = images / max(1e-9, time.perf_counter() - t0)
                        record = {"step": step, **losses, "lr_g": opt_g.param_groups[0]["lr"], "images_per_s": ips}
                        metrics_file.write(json.dumps(record) + "\n")
                        metrics_file.flush()
                        if writer is not None:
                            for k, v in record.items():
                                if k != "step":
                                    writer.add_scalar(f"train/{k}", v, step)
                    if writer is not None and tc.image_every and step % tc.image_every == 0:
                        _log_images(writer, model, ema, cond, target, z_generator, step)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(rec=f"{losses['reconstruction']:.3f}", img_s=f"{images / (time.perf_counter() - t0):.1f}")
                elif bar is not None:
                    bar.update(1)

                stop_now = _agree(stop.requested, world, device)
                if step % tc.checkpoint_every == 0 or step == tc.steps or stop_now:
                    if _all_finite(model) and _all_finite(disc):
                        save(step)
                    elif is_main:
                        print(f"linecolor: parameters are not finite at step {step}; checkpoint not written")
                if stop_now and step < tc.steps:
                    status = "interrupted"
                    break
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - t0
    return TrainResult(run_dir, start_step, step, status, last_ckpt, counters["skipped_nonfinite"],
                       counters["bad_samples"], images / elapsed if elapsed > 0 else 0.0)


def diversity_latents(shape: torch.Size | tuple[int, int], generator: torch.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (B, latent_dim) CPU latents per sample for ``diversity_pair = "prior"``: the first half of the batch
    gets two independent N(0, I) draws (two seeds), the rest two latent-shift slider points ``s·1`` with ``s``
    uniform in ±:data:`~linecolor.limits.MAX_LATENT_SHIFT` (deterministic mode's slider)."""
    b, dim = shape
    draws = b - b // 2
    first, second = torch.randn((2, b, dim), generator=generator)
    shifts = (torch.rand((2, b - draws, 1), generator=generator) * 2 - 1) * MAX_LATENT_SHIFT
    first[draws:], second[draws:] = shifts[0].expand(-1, dim), shifts[1].expand(-1, dim)
    return first, second


def train_step(config, g_model, d_model, model, perceptual, opt_g, opt_d, cond, target, z_generator, autocast,
                use_gan: bool, labels: torch.Tensor | None = None) -> dict[str, float] | None:
    """One D update (when the GAN is on) and one G update of ``model`` on one batch — what :func:`train` runs each
    step, public so that ``linecolor bench`` can time it. ``g_model``/``d_model`` are the (possibly
    DistributedDataParallel-wrapped) generator model and discriminator, ``model`` the unwrapped
    :class:`~linecolor.models.colorizer.Colorizer`; ``cond``/``target`` a batch as :mod:`linecolor.training.dataset`
    makes it; ``labels`` its region labels (the loader's ``collate`` makes them; computed here when None). Returns the
    losses, or None if any was non-finite (then no parameter changed)."""
    lc = config.loss
    with autocast:
        if model.style_encoder is not None:
            mu, logvar = model.style_encoder(target)
            z = reparameterize(mu, logvar, z_generator)
            if lc.style_dropout > 0:
                keep = torch.rand(z.shape[0], generator=z_generator) >= lc.style_dropout  # (B,) on the CPU
                z = z * keep.to(z.device, z.dtype)[:, None]
        else:
            mu = logvar = z = None
        fake = g_model(cond, z)

    losses: dict[str, float] = {}
    if use_gan:
        d_model.requires_grad_(True)
        with autocast:
            d_fake = d_model(cond, fake.detach())
            d_real = d_model(cond, target)
            d_loss = hinge_discriminator_loss(d_real, d_fake)
        if not math.isfinite(d_loss.item()):
            return None
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        if not _finite_grad_norm(d_model, config.train.grad_clip):
            opt_d.zero_grad(set_to_none=True)
            return None
        losses["d_hinge"] = d_loss.item()

    with autocast:
        total = lc.reconstruction * (rec := reconstruction_loss(fake.float(), target, lc.reconstruction_type))
        losses["reconstruction"] = rec.item()
        if lc.hint_adherence > 0:
            adherence = hint_adherence_loss(fake.float(), cond.float())
            total = total + lc.hint_adherence * adherence
            losses["hint_adherence"] = adherence.item()
        if lc.region_colour > 0:
            regions = region_colour_loss(fake.float(), target, region_labels(cond[:, 0]) if labels is None else labels)
            total = total + lc.region_colour * regions
            losses["region_colour"] = regions.item()
        if mu is not None and lc.kl > 0:
            kl = kl_divergence(mu.float(), logvar.float())
            total = total + lc.kl * kl
            losses["kl"] = kl.item()
        if lc.diversity > 0 and z is not None:
            # Renderings from other latents: their unhinted paper must move apart, their hinted regions must not
            # (the user's colours hold in every variation). See LossConfig.diversity_pair.
            hinted = (cond[:, 8:9] > 0).float()
            if lc.diversity_pair == "prior":
                z_first, z_second = diversity_latents(z.shape, z_generator)
                z_first, z_second = z_first.to(z.device, z.dtype), z_second.to(z.device, z.dtype)
                first = g_model(torch.cat([cond, cond]), torch.cat([z_first, z_second])).float()
                first, varied = first.chunk(2)
                anchored = masked_l1(torch.cat([first, varied]), torch.cat([target, target]),
                                     torch.cat([hinted, hinted]))
            else:
                z_first = z
                z_second = torch.randn(z.shape, generator=z_generator).to(z.device, z.dtype)
                first, varied = fake.float(), g_model(cond, z_second).float()
                anchored = masked_l1(varied, target, hinted)
            if lc.diversity_regions:
                region_map = region_labels(cond[:, 0]) if labels is None else labels
                first, varied = region_flattened(first, region_map), region_flattened(varied, region_map)
            div = diversity_loss(first, varied, z_first.float(), z_second.float(), unhinted_paper(cond.float()),
                                 lc.diversity_target, lc.diversity_latent_cap)
            total = total + lc.diversity * div + lc.reconstruction * anchored
            losses["diversity"], losses["varied_hinted"] = div.item(), anchored.item()
        if perceptual is not None:
            perc = perceptual(fake.float(), target)
            total = total + lc.perceptual * perc
            losses["perceptual"] = perc.item()
        if use_gan:
            d_model.requires_grad_(False)
            d_fake = d_model(cond, fake)
            with torch.no_grad():
                d_real = d_model(cond, target)
            g_gan = hinge_generator_loss(d_fake)
            fm = feature_matching_loss(d_real, d_fake)
            total = total + lc.gan * g_gan + lc.feature_matching * fm
            losses["g_hinge"], losses["feature_matching"] = g_gan.item(), fm.item()
    losses["g_total"] = total.item()
    if not math.isfinite(losses["g_total"]):
        if use_gan:
            opt_d.zero_grad(set_to_none=True)
        return None
    opt_g.zero_grad(set_to_none=True)
    total.backward()
    if not _finite_grad_norm(g_model, config.train.grad_clip):
        # A finite loss can still have inf/NaN gradients; one such Adam step poisons every weight.
        opt_g.zero_grad(set_to_none=True)
        if use_gan:
            opt_d.zero_grad(set_to_none=True)
        return None
    if use_gan:
        opt_d.step()  # D's step is taken only once G's loss and gradients are known to be finite too
    opt_g.step()
    if use_gan:
        d_model.requires_grad_(True)
    return losses


def _ignore_stop_signals(worker_id: int) -> None:
    """Loader workers leave SIGTERM/SIGINT to the training process. A signal sent to the whole process group (Ctrl-C
    in a terminal, ``timeout``, a service manager) would otherwise kill the workers first, and the loader's error
    would end the run without the checkpoint the training process saves when it is asked to stop."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _finite_grad_norm(module: nn.Module, clip: float) -> bool:
    """Clip the gradient norm (when ``clip`` > 0) and report whether it is finite."""
    norm = nn.utils.clip_grad_norm_(module.parameters(), clip if clip > 0 else float("inf"))
    return bool(torch.isfinite(norm))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """In place: every parameter of ``ema`` moves ``1 − decay`` of the way to ``model``'s; buffers are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _all_finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


def _agree(flag: bool, world: int, device: torch.device) -> bool:
    """Every rank stops at the same step if any rank was asked to."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _save(run_dir, step, model, disc, ema, opt_g, opt_d, z_generator, counters, config_dict, keep, world) -> Path:
    tensors = {**ckpt.add_prefix(model.state_dict(), "colorizer"), **ckpt.add_prefix(disc.state_dict(), "discriminator")}
    if ema is not None:
        tensors.update(ckpt.add_prefix(ema.state_dict(), "ema"))
    state = {"step": step, "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
             "z_generator": [z_generator.get_state()] * world, "torch_rng": torch.get_rng_state(),
             "counters": dict(counters)}
    return ckpt.save_checkpoint(run_dir, step, tensors, state, config_dict, keep)


def _resume_path(run_dir: Path, resume: str) -> Path | None:
    if resume == "auto":
        latest = ckpt.find_latest_checkpoint(run_dir)
        return latest.path if latest else None
    if resume == "never":
        if ckpt.list_checkpoints(run_dir):
            raise LinecolorError(f"{run_dir} already has checkpoints; use --resume auto to continue it "
                                 "or choose another run directory")
        return None
    path = Path(resume)
    if not path.is_dir():
        raise LinecolorError(f"--resume {resume!r}: expected 'auto', 'never' or a checkpoint directory")
    return path


def _check_compatible(saved: dict[str, Any], config: ExperimentConfig) -> None:
    saved_model = {k: v for k, v in saved.get("model", {}).items()}
    if saved_model != to_dict(config.model) or saved.get("discriminator") != to_dict(config.discriminator):
        raise ConfigError("the checkpoint was written with another model/discriminator configuration than this run's; "
                          "resume with the same config or start a new run directory")


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _summary_writer(run_dir: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


@torch.no_grad()
def _log_images(writer, model, ema, cond, target, z_generator, step: int) -> None:
    """Grid rows: line | hints | output (EMA if any) | target, for up to 4 samples."""
    net = ema if ema is not None else model
    was_training = net.training
    net.eval()
    n = min(4, len(cond))
    out = net(cond[:n], None)
    net.train(was_training)
    line = cond[:n, :1].repeat(1, 3, 1, 1)
    hints = torch.where(cond[:n, 4:5] > 0, cond[:n, 1:4], line * 0.3 + 0.7)
    grid = torch.cat([line, hints, out.float(), target[:n]], dim=3)  # (n, 3, H, 4W)
    grid = torch.cat(list(grid), dim=1)  # (3, nH, 4W)
    writer.add_image("samples/line|hints|output|target", (grid + 1) / 2, step)


def load_experiment_config(path: Path) -> ExperimentConfig:
    """The ExperimentConfig saved in a run directory or checkpoint."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return from_dict(ExperimentConfig, {k: v for k, v in raw.items() if not k.startswith("_")})


def export(source: str | Path, out_dir: str | Path, *, use_ema: bool = True, dtype: torch.dtype | None = None) -> Path:
    """Training checkpoint (or a run directory: its newest committed checkpoint) → inference directory
    (``config.json`` + ``model.safetensors``) holding the EMA generator and style encoder."""
    source = Path(source)
    if (source / ckpt.CHECKPOINT_DIR).is_dir() or not (source / ckpt.COMMIT_MARKER).exists():
        latest = ckpt.find_latest_checkpoint(source)
        if latest is None:
            raise WeightsError(f"{source}: no committed checkpoint found (expected a run directory or a "
                               f"checkpoints/step-NNNNNNNN directory)")
        source = latest.path
    tensors, _, config_dict = ckpt.load_checkpoint(source)
    config = from_dict(ExperimentConfig, {k: v for k, v in config_dict.items() if not k.startswith("_")})
    model = Colorizer(config.model)
    prefix = "ema" if use_ema and any(k.startswith("ema.") for k in tensors) else "colorizer"
    model.load_state_dict(ckpt.split_prefix(tensors, prefix), strict=True)
    return model.save_pretrained(out_dir, dtype=dtype)
