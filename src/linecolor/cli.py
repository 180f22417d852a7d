"""The ``linecolor`` command line: a thin typed layer over the Python API.

Each subcommand maps its flags onto the config dataclasses or the pipeline's arguments and calls the library; no
module below this one ever sees the argparse namespace. User errors (bad files, bad config keys, missing weights)
print one clear message and exit with status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from linecolor.config import ServerConfig
from linecolor.data.names import EVALUATION_SOURCES, PREPARE_SOURCES, SOURCES
from linecolor.errors import LinecolorError
from linecolor.limits import (
    COMPOSITES,
    MAX_GAP,
    MAX_LATENT_SHIFT,
    MODES,
    OUTPUT_FORMATS,
    SUGGESTION_STRENGTH,
    SUGGESTION_STRENGTH_RANGE,
    SUGGESTION_STRENGTH_WITHOUT_HEAD,
)
from linecolor.training import head_recipe
from linecolor.version import __version__

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
LAYERED_OUTPUT_SUFFIXES = tuple("." + f for f in OUTPUT_FORMATS if f != "png")


def _cmd_prepare(args: argparse.Namespace) -> int:
    if args.source == "safebooru":
        from linecolor.data.safebooru import DEFAULT_INCLUDE_TAGS, prepare_safebooru

        report, summary = prepare_safebooru(
            args.input, args.out, size=args.size, include_tags=args.tags or DEFAULT_INCLUDE_TAGS,
            exclude_tags=args.exclude_tags or (),
            limit=args.limit, images_dir=args.images, rate_limit_per_s=args.rate, extractor=args.extractor,
            overwrite=args.overwrite, progress=not args.quiet)
        print(f"downloaded {report.downloaded} images ({report.skipped} already there, {report.not_found} gone, "
              f"{report.failed + report.invalid + report.too_large + report.refused} failed)")
    else:
        from linecolor.data.datasets import prepare_dataset

        summary = prepare_dataset(args.source, Path(args.input), Path(args.out), size=args.size, limit=args.limit,
                                  extractor=args.extractor, workers=args.workers, progress=not args.quiet,
                                  overwrite=args.overwrite)
    splits = summary.get("splits", {})
    print(f"prepared {sum(splits.values())} pairs into {args.out} "
          f"({', '.join(f'{k} {v}' for k, v in splits.items())}; skipped {summary.get('skipped', 0)})")
    return 0


def _experiment_config(args: argparse.Namespace):
    from linecolor.config import (
        ExperimentConfig,
        apply_overrides,
        from_dict,
        load_config,
        to_dict,
    )

    overrides = list(args.override or [])
    if args.data:
        overrides.append("data.train_dirs=[" + ",".join(_toml_str(d) for d in args.data) + "]")
    for flag, key in (("steps", "train.steps"), ("batch_size", "train.batch_size"), ("device", "train.device"),
                      ("seed", "train.seed"), ("variant", "model.generator.variant"),
                      ("base_channels", "model.generator.base_channels"), ("image_size", "data.image_size")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={_toml_str(value) if isinstance(value, str) else value}")
    if args.config:
        return load_config(ExperimentConfig, args.config, overrides)
    base = to_dict(ExperimentConfig())
    if getattr(args, "init_weights", None):
        # Fine-tuning without a config file: the model is the one the weights were saved as.
        from linecolor.models.colorizer import load_model_config
        from linecolor.training.trainer import resolve_init_weights

        base["model"] = to_dict(load_model_config(resolve_init_weights(args.init_weights)))
    return from_dict(ExperimentConfig, apply_overrides(base, overrides) if overrides else base)


def _toml_str(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cmd_train(args: argparse.Namespace) -> int:
    from linecolor.training.trainer import train

    config = _experiment_config(args)
    result = train(config, Path(args.run_dir), resume=args.resume, init_weights=args.init_weights,
                   progress=not args.quiet)
    print(f"{result.status}: steps {result.start_step} → {result.final_step}, "
          f"{result.images_per_second:.1f} images/s, last checkpoint {result.last_checkpoint}, "
          f"skipped non-finite steps {result.skipped_nonfinite}, undecodable samples {result.bad_samples}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import torch

    from linecolor.training.trainer import export

    out = export(args.checkpoint, args.out, use_ema=not args.no_ema, dtype=torch.float16 if args.fp16 else None)
    print(f"exported inference weights to {out}")
    return 0


def _cmd_train_head(args: argparse.Namespace) -> int:
    import numpy as np

    from linecolor.data.sources import iter_source
    from linecolor.evaluation.run import DATA_FILES
    from linecolor.inference.pipeline import ColorizationPipeline
    from linecolor.inference.region_head import REGION_HEAD_FILE
    from linecolor.training.region_head import (
        COLOURINGS_PER_DRAWING,
        TRAIN_DELTA_E,
        RegionExamples,
        collect_examples,
        describe,
        sample_pairs,
        train_region_head,
    )

    if (args.limit < 0 or args.size < 16 or args.palette < 1 or args.hidden < 1 or args.epochs < 1
            or args.members < 1):
        raise LinecolorError("--limit must be ≥ 0, --size ≥ 16, and --palette, --hidden, --epochs and --members ≥ 1")
    right_delta_e = TRAIN_DELTA_E if args.right_delta_e is None else args.right_delta_e
    if not right_delta_e > 0:  # NaN too
        raise LinecolorError(f"--right-delta-e must be a positive CIEDE2000 distance, got {args.right_delta_e}")
    out = Path(args.out or args.weights)
    target = out / REGION_HEAD_FILE
    if target.exists() and not args.force:
        raise LinecolorError(f"{target} exists: pass --force to replace it")
    if not (Path(args.weights) / "model.safetensors").is_file():
        raise LinecolorError(f"no network weights in {args.weights} (expected model.safetensors)")
    cached = bool(args.examples) and Path(args.examples).is_file()
    if cached:
        examples = RegionExamples.load(args.examples)
        print(f"train-head: {len(examples)} regions from {args.examples}", file=sys.stderr)
    else:
        pipe = ColorizationPipeline.from_pretrained(args.weights, region_head=None)
        rng = np.random.default_rng(args.seed)
        parts = []
        for source in args.sources:
            data = Path(args.data_root) / DATA_FILES[source]
            if not data.exists():
                raise LinecolorError(f"training data not found: {data} (set --data-root)")
            records = list(iter_source(source, data, "train"))
            total = min(len(records), args.limit) if args.limit else len(records)
            print(f"train-head: {source}: colouring {total} training drawings", file=sys.stderr)
            parts.append(collect_examples(pipe, sample_pairs(records, args.limit or None, args.size), rng))
        examples = RegionExamples.concatenate(parts, provenance=(
            f"{','.join(args.sources)} train splits; {args.limit or 'all'} drawings per source at {args.size}², "
            f"{COLOURINGS_PER_DRAWING} hint draws each; seed {args.seed}"))
        if args.examples:
            examples.save(args.examples)
    head = train_region_head(examples, palette_size=args.palette, hidden=args.hidden, epochs=args.epochs,
                             right_delta_e=right_delta_e, seed=args.seed, members=args.members)
    describe(examples, head)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"examples": examples.provenance, "regions": str(len(examples)), "epochs": str(args.epochs),
            "hidden": str(args.hidden), "palette": str(args.palette), "right_delta_e": f"{right_delta_e:g}",
            "seed": str(args.seed), "members": str(args.members)}
    print(f"wrote {head.save(out, meta)}")
    return 0


def _strength(text: str) -> float:
    """argparse type: a suggestion strength (:data:`linecolor.limits.SUGGESTION_STRENGTH_RANGE`), checked before
    any model is loaded."""
    lo, hi = SUGGESTION_STRENGTH_RANGE
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not lo <= value <= hi:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be between {lo:g} and {hi:g}, got {text!r}")
    return value


def _gap(text: str) -> float | None:
    """argparse type: a gap in pixels (:data:`linecolor.limits.MAX_GAP`) or ``auto``."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of pixels or 'auto': {text!r}") from None
    if not 0.0 <= value <= MAX_GAP:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_GAP:g} pixels, got {text!r}")
    return value


def _cmd_colorize(args: argparse.Namespace) -> int:
    from linecolor.inference.hints import parse_points
    from linecolor.inference.pipeline import ColorizationPipeline
    from linecolor.raster.imageio import save_image
    from linecolor.raster.layered import write_layered

    source = Path(args.input)
    if not source.exists():
        raise LinecolorError(f"input not found: {source}")
    points = parse_points(args.points) if args.points else None
    if points is not None and args.hints:
        raise LinecolorError("give hints either as --hints (an RGBA PNG) or as --points, not both")
    from linecolor.inference.pipeline import option_problems

    # Everything that does not need the model is checked before loading it (that takes seconds).
    problems = option_problems(args.mode, args.seed, args.latent_shift, args.reference, args.composite,
                               args.suggestion_strength)
    for flag, value in (("--hints", args.hints), ("--reference", args.reference)):
        if value and not Path(value).exists():
            problems.append(f"{flag} {value}: no such file or folder")
    if problems:
        raise LinecolorError("; ".join(problems))
    reference = None
    if args.reference:
        from linecolor.inference.reference import Reference

        reference = Reference.open(args.reference)  # once for a whole folder, and a broken one refused up front
    palette = None
    if args.palette:
        from linecolor.raster.palette import read_gpl

        palette = read_gpl(args.palette)  # read (and refused) before any model is loaded
    options = dict(mode=args.mode, seed=args.seed, latent_shift=args.latent_shift, reference=reference,
                   composite=args.composite, suggestion_strength=args.suggestion_strength, gap=args.gap,
                   palette=palette)

    def colour_and_write(colour, line, hints, target: Path) -> None:
        """A layered file by the target's suffix (its layers carry the lines), else the flattened image;
        ``colour`` is the pipeline or a page series."""
        layered = target.suffix.lower() in LAYERED_OUTPUT_SUFFIXES
        if isinstance(colour, ColorizationPipeline):
            result = (colour.layered(line, hints, **options) if layered else
                      colour(line, hints, overlay_lines=not args.no_overlay, **options))
        else:
            result = colour(line, hints)
        if layered:
            write_layered(result, target, overwrite=args.overwrite)
        else:
            save_image(result, target, overwrite=args.overwrite)

    protected = {_resolved(p) for p in (args.hints, args.reference) if p and Path(p).is_file()}
    layered_out = (args.format or "png") != "png" or (args.out and Path(args.out).suffix.lower() in
                                                    LAYERED_OUTPUT_SUFFIXES)
    if args.no_overlay and layered_out:
        raise LinecolorError("--no-overlay is for flattened outputs; a layered file keeps the lines on their own layer")

    if args.consistent and not source.is_dir():
        raise LinecolorError("--consistent colours the pages of a folder alike; give a folder of line images")
    if source.is_dir():
        jobs = _plan_folder(source, Path(args.out) if args.out else None, Path(args.hints) if args.hints else None,
                            points, protected, "." + (args.format or "png"))
        pipe = ColorizationPipeline.from_pretrained(args.weights, device=args.device)
        colour = (pipe.page_series(layered=bool(layered_out), overlay_lines=not args.no_overlay, **options)
                  if args.consistent else pipe)
        failed = kept = 0
        for path, hints, target in jobs:
            if target.exists() and not args.overwrite:
                kept += 1
                print(f"linecolor: kept {target}: it already exists (--overwrite replaces it)", file=sys.stderr)
                continue
            try:
                colour_and_write(colour, path, hints, target)
                print(f"{path} → {target}")
            except (LinecolorError, OSError, MemoryError) as exc:  # one bad file must not lose the rest
                failed += 1
                reason = "not enough memory" if isinstance(exc, MemoryError) else str(exc)
                print(f"linecolor: skipped {path}: {reason}", file=sys.stderr)
        if failed or kept:
            print(f"linecolor: {len(jobs) - failed - kept} of {len(jobs)} images coloured ({failed} failed, "
                  f"{kept} outputs already there)", file=sys.stderr)
            return 1
        return 0

    default_name = source.stem + "_colored." + (args.format or "png")
    out = Path(args.out) if args.out else source.with_name(default_name)
    if out.is_dir():
        out = out / default_name
    if _resolved(out) in protected | {_resolved(source)}:
        raise LinecolorError(f"output {out} is one of the inputs; choose another --out")
    if out.suffix.lower() not in IMAGE_SUFFIXES + LAYERED_OUTPUT_SUFFIXES:
        raise LinecolorError(f"output {out} must end in .png, .jpg, .jpeg, .webp (flattened) or .psd, .ora "
                             f"(layered)")
    if args.format and out.suffix.lower() != "." + args.format and not (args.format == "png" and
                                                                         out.suffix.lower() in IMAGE_SUFFIXES):
        raise LinecolorError(f"--format {args.format} but the output {out} ends in {out.suffix}")
    if out.exists() and not args.overwrite:
        raise LinecolorError(f"output {out} already exists; pass --overwrite to replace it")
    pipe = ColorizationPipeline.from_pretrained(args.weights, device=args.device)
    colour_and_write(pipe, source, points if points is not None else args.hints, out)
    print(f"{source} → {out}")
    return 0


def _resolved(path: str | Path) -> Path:
    return Path(path).resolve()


def _plan_folder(source: Path, out_dir: Path | None, hints_dir: Path | None, points, protected: set[Path],
                 suffix: str = ".png"):
    """(line image, hints, output path) for every image of ``source``, checked before any model is loaded: the
    outputs never land on an input, and two inputs never share an output (``a.png`` and ``a.jpg`` become
    ``a_png.png`` and ``a_jpg.png``). Outputs end in ``suffix``."""
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise LinecolorError(f"no PNG/JPEG/WebP images in {source}")
    out_dir = out_dir or source.with_name(source.name + "_colored")
    if out_dir.exists() and not out_dir.is_dir():
        raise LinecolorError(f"--out {out_dir} is a file; with a folder of line images it must be a folder")
    if not out_dir.exists() and out_dir.suffix.lower() in IMAGE_SUFFIXES + LAYERED_OUTPUT_SUFFIXES:
        raise LinecolorError(f"--out {out_dir} looks like a file name, but with a folder of line images it must be "
                             f"a folder (use --format to choose png, psd or ora)")
    if hints_dir is not None and not hints_dir.is_dir():
        raise LinecolorError(f"with a folder of line images, --hints must be a folder of RGBA PNGs: {hints_dir}")
    for name, folder in (("the input folder", source), ("the hints folder", hints_dir)):
        if folder is not None and _resolved(out_dir) == _resolved(folder):
            raise LinecolorError(f"--out {out_dir} is {name}: the outputs would replace its images")
    stems: dict[str, int] = {}
    for path in files:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    jobs, targets = [], {}
    for path in files:
        name = path.stem if stems[path.stem] == 1 else f"{path.stem}_{path.suffix[1:].lower()}"
        target = out_dir / (name + suffix)
        if target in targets:
            raise LinecolorError(f"{path.name} and {targets[target].name} would both be written to {target}; "
                                 "rename one of them")
        targets[target] = path
        hints = points
        if hints_dir is not None and (hints_dir / (path.stem + ".png")).is_file():
            hints = hints_dir / (path.stem + ".png")
            protected = protected | {_resolved(hints)}
        jobs.append((path, hints, target))
    inputs = protected | {_resolved(p) for p in files}
    clash = next((t for t in targets if _resolved(t) in inputs), None)
    if clash is not None:
        raise LinecolorError(f"output {clash} would replace an input; choose another --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LinecolorError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from exc
    return jobs


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from linecolor.evaluation import run_evaluation

    weights: dict[str, str] = {}
    for item in args.weights or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise LinecolorError(f"--weights {item!r} is not of the form NAME=DIR")
        if name in weights:
            raise LinecolorError(f"--weights names {name!r} twice")
        weights[name] = path
    if not weights and args.no_baselines:
        raise LinecolorError("nothing to evaluate: give --weights NAME=DIR and/or keep the baselines")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.regions and args.learned:
        raise LinecolorError("--regions and --learned are two different evaluations: choose one")
    if args.regions:
        return _evaluate_regions(args, weights)
    if args.learned:
        return _evaluate_learned(args, weights)
    out = run_evaluation(weights, args.out, data_root=args.data_root, sources=tuple(args.sources),
                         sizes=tuple(args.sizes), ks=tuple(args.ks), limit_per_source=args.limit, seed=args.seed,
                         hints_file=args.hints, baselines=not args.no_baselines, progress=not args.quiet,
                         split=args.split)
    for name, path in out["files"].items():
        print(f"{name}: {path}")
    return 0


def _evaluate_regions(args: argparse.Namespace, weights: dict[str, str]) -> int:
    """``evaluate --regions``: the region metrics of the models and the region baselines (G'MIC where installed)."""
    from linecolor.evaluation import baselines
    from linecolor.evaluation.gmic import gmic_available, gmic_colorize
    from linecolor.evaluation.protocol import model_method
    from linecolor.evaluation.regions import run_region_evaluation

    methods = {name: model_method(path) for name, path in weights.items()}
    if not args.no_baselines:
        methods.update(flat_regions=baselines.flat_regions, region_fill=baselines.region_fill,
                       hint_fill=baselines.hint_fill)
        if gmic_available():
            methods["gmic"] = gmic_colorize
        else:
            print("linecolor evaluate: G'MIC is not installed (Debian package 'gmic'): its row is left out",
                  file=sys.stderr)
    out = run_region_evaluation(methods, _data_paths(args), args.out, size=args.sizes[0], limit_per_source=args.limit,
                                seed=args.seed, progress=not args.quiet, split=args.split)
    for name, path in out["files"].items():
        print(f"{name}: {path}")
    return 0


def _evaluate_learned(args: argparse.Namespace, weights: dict[str, str]) -> int:
    """``evaluate --learned``: issue 14's yardsticks (suggestions against white, variations, reference, shading)."""
    from linecolor.evaluation.learned import run_learned_evaluation

    if not weights:
        raise LinecolorError("--learned measures models: give --weights NAME=DIR")
    out = run_learned_evaluation(weights, _data_paths(args), args.out, split=args.split, size=args.sizes[0],
                                 limit_per_source=args.limit, seed=args.seed, progress=not args.quiet)
    for name, path in out["files"].items():
        print(f"{name}: {path}")
    return 0


def _data_paths(args: argparse.Namespace) -> dict[str, Path]:
    """The data of ``--sources`` under ``--data-root``; refused when missing."""
    from linecolor.evaluation.run import DATA_FILES

    paths = {s: Path(args.data_root) / DATA_FILES[s] for s in args.sources}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise LinecolorError(f"evaluation data not found: {', '.join(missing)} (set --data-root)")
    return paths


def _cmd_bench(args: argparse.Namespace) -> int:
    from linecolor.bench import run_bench_args

    return run_bench_args(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from linecolor.server import serve

    serve(ServerConfig(host=args.host, port=args.port, weights=args.weights, queue_size=args.queue_size,
                       threads=args.threads, device=args.device,
                       allowed_hosts=tuple(args.allowed_host) if args.allowed_host else None))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linecolor", description="Hint-guided line-art colourisation.")
    parser.add_argument("--version", action="version", version=f"linecolor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("prepare", help="turn a data source into compact training arrays",
                       description="Rasterise/load line+colour pairs once into the prepared array format.")
    p.add_argument("source", choices=PREPARE_SOURCES,
                   help="openmoji (tarball), dicebear / fluent / bigheads / toonhead (folders), paired (color/ + "
                        "line/), colors (colour only), safebooru (the original paper's data: the Safebooru metadata "
                        "CSV; filters by tags, downloads resumably, extracts lines)")
    p.add_argument("input", help="the tarball, folder or (safebooru) metadata CSV to read")
    p.add_argument("out", help="output directory (manifest.json + <split>/color.npy, line.npy)")
    p.add_argument("--size", type=int, default=256, help="square size in pixels (default 256)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many items")
    p.add_argument("--extractor", choices=["xdog", "flat"], default="xdog",
                   help="line extractor for 'colors' and 'safebooru'")
    p.add_argument("--tags", help="safebooru: tags every post must have, space-separated (default: the original "
                                  "work's filter, linecolor.data.safebooru.DEFAULT_INCLUDE_TAGS)")
    p.add_argument("--exclude-tags", default="", help="safebooru: tags no post may have (space-separated)")
    p.add_argument("--images", help="safebooru: download folder, kept between runs (default: OUT.images)")
    p.add_argument("--rate", type=float, default=1.0, help="safebooru: most requests per second (default 1)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("train", help="train a colorizer (resumable)",
                       description="Train a colorizer. The same command starts a run and restarts it "
                                   "(--resume auto). Config: a TOML/JSON file plus section.key=value overrides.")
    p.add_argument("run_dir", help="run directory (checkpoints, TensorBoard logs, metrics.jsonl)")
    p.add_argument("--config", help="TOML or JSON experiment config")
    p.add_argument("-o", "--override", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. -o train.lr_generator=2e-4 (repeatable)")
    p.add_argument("--data", action="append", metavar="DIR", help="prepared data directory (repeatable)")
    p.add_argument("--steps", type=int, help="shortcut for -o train.steps=N")
    p.add_argument("--batch-size", type=int, help="shortcut for -o train.batch_size=N")
    p.add_argument("--image-size", type=int, help="shortcut for -o data.image_size=N")
    p.add_argument("--variant", help="shortcut for -o model.generator.variant=NAME (ladder, spade)")
    p.add_argument("--base-channels", type=int, help="shortcut for -o model.generator.base_channels=N")
    p.add_argument("--device", help="shortcut for -o train.device=auto|cpu|cuda")
    p.add_argument("--seed", type=int, help="shortcut for -o train.seed=N")
    p.add_argument("--resume", default="auto", help="auto (default), never, or a checkpoint directory")
    p.add_argument("--init-weights", metavar="DIR|default",
                   help="start from an exported model directory, or 'default' for the bundled model (fine-tuning); "
                        "without --config the model section is the one the weights were saved with")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("export", help="training checkpoint → inference weights",
                       description="Write config.json + model.safetensors (EMA weights by default) from a run "
                                   "directory's newest committed checkpoint or a given checkpoint directory.")
    p.add_argument("checkpoint", help="run directory or checkpoints/step-NNNNNNNN directory")
    p.add_argument("out", help="output directory")
    p.add_argument("--no-ema", action="store_true", help="export the raw instead of the EMA weights")
    p.add_argument("--fp16", action="store_true", help="store the weights as float16 (half the size)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("train-head", help="train the region head of a network's weights",
                       description="Colour training drawings of the data sources with the network (a few hint dots "
                                   "each) and fit the region head that picks unhinted regions' colours "
                                   "(linecolor.inference.region_head); writes region_head.safetensors beside the "
                                   "network's weights (or into --out).")
    p.add_argument("weights", help="weights directory (config.json + model.safetensors)")
    p.add_argument("--out", help="where to write region_head.safetensors (default: the weights directory)")
    p.add_argument("--force", action="store_true", help="replace an existing region head")
    p.add_argument("--data-root", default="../shared/data", help="folder with the data sources")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--limit", type=int, default=head_recipe.DRAWINGS_PER_SOURCE,
                   help="training drawings per source, evenly spread (0: all; default "
                        f"{head_recipe.DRAWINGS_PER_SOURCE})")
    p.add_argument("--size", type=int, default=512, help="size the drawings are coloured at (default 512)")
    p.add_argument("--palette", type=int, default=head_recipe.PALETTE_COLOURS,
                   help=f"palette colours the head may pick (default {head_recipe.PALETTE_COLOURS})")
    p.add_argument("--hidden", type=int, default=head_recipe.HIDDEN_UNITS,
                   help=f"hidden units per layer (default {head_recipe.HIDDEN_UNITS})")
    p.add_argument("--epochs", type=int, default=head_recipe.TRAINING_STEPS,
                   help=f"full-batch training steps (default {head_recipe.TRAINING_STEPS})")
    p.add_argument("--members", type=int, default=head_recipe.HEAD_MEMBERS,
                   help="MLPs fitted with other seeds whose probabilities the head averages (default "
                        f"{head_recipe.HEAD_MEMBERS})")
    p.add_argument("--right-delta-e", type=float, metavar="E",
                   help="a candidate within this CIEDE2000 of the truth counts as right in training (default: "
                        "linecolor.training.region_head.TRAIN_DELTA_E)")
    p.add_argument("--examples", metavar="NPZ", help="cache of the collected regions: read if it exists, else "
                                                     "written (collecting takes minutes, fitting seconds)")
    p.add_argument("--seed", type=int, default=0, help="seed of the hint draws and the training")
    p.set_defaults(func=_cmd_train_head)

    p = sub.add_parser("colorize", help="colour one line image or a folder",
                       description="Colour a line image (or every PNG/JPEG/WebP in a folder) following hints.")
    p.add_argument("input", help="line image or folder of line images")
    p.add_argument("--weights", help="model directory (default: the bundled model)")
    p.add_argument("--out", help="output file (single image: .png/.jpg/.webp flattened, .psd/.ora layered) or "
                                 "folder (folder input)")
    p.add_argument("--format", choices=OUTPUT_FORMATS,
                   help="png (flattened, the default), psd or ora (layers: flats, shading, lines, hidden hints); "
                        "for a single image the --out suffix decides")
    p.add_argument("--hints", help="RGBA PNG hint layer of the same size (a folder of them for folder input)")
    p.add_argument("--points", help='hint points "x,y,#rrggbb[,radius];..." in pixel coordinates')
    p.add_argument("--mode", choices=MODES, default=MODES[0])
    p.add_argument("--seed", type=int, help="seed of the style latent in stochastic mode")
    p.add_argument("--latent-shift", type=float, default=0.0,
                   help=f"move the whole palette (-{MAX_LATENT_SHIFT:g} … {MAX_LATENT_SHIFT:g})")
    p.add_argument("--reference", help="reference colour image (reference mode)")
    p.add_argument("--no-overlay", action="store_true",
                   help="do not lay the original lines over the result (flat colours without lines)")
    p.add_argument("--composite", choices=COMPOSITES, default=COMPOSITES[0],
                   help="fill-guided models: flat regions (default) or the network's shading")
    p.add_argument("--suggestion-strength", type=_strength, default=None, metavar="S",
                   help="0…1: how strongly the model's colours show in regions without hints (0 = white; "
                        f"default {SUGGESTION_STRENGTH:g} for a model with a region head, "
                        f"{SUGGESTION_STRENGTH_WITHOUT_HEAD:g} without)")
    p.add_argument("--gap", type=_gap, default=None, metavar="PX",
                   help="close gaps in the lines up to PX pixels (default: auto, a few stroke widths; 0: none)")
    p.add_argument("--consistent", action="store_true",
                   help="folder input: colour the pages in name order so that a region seen on an earlier page "
                        "(same place and shape) keeps that page's colour unless hinted")
    p.add_argument("--palette", metavar="FILE.gpl",
                   help="GIMP palette: regions without hints take its colour nearest to the model's suggestion")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that already exist (inputs are never replaced)")
    p.set_defaults(func=_cmd_colorize)

    p = sub.add_parser("evaluate", help="measure models and baselines on the test splits",
                       description="PSNR / SSIM / hint adherence (CIEDE2000) at K hints on the test splits of the "
                                   "three data sources, for trained models and the classical baselines (line only, "
                                   "region fill, Levin et al. 2004); writes results.md/csv, a PSNR-vs-hints plot and "
                                   "a qualitative grid. Reuses earlier rows in OUT for unchanged methods.")
    p.add_argument("out", help="output directory (hints.json, results.md, results.csv, psnr_vs_hints.png, grid.png)")
    p.add_argument("--weights", action="append", metavar="NAME=DIR", help="a model to evaluate (repeatable)")
    p.add_argument("--data-root", default="../shared/data", help="folder with the data sources")
    p.add_argument("--sources", nargs="+", default=list(EVALUATION_SOURCES), choices=SOURCES)
    p.add_argument("--sizes", nargs="+", type=int, default=[256, 512], help="evaluation sizes (default 256 512)")
    p.add_argument("--ks", nargs="+", type=int, default=[0, 1, 2, 5, 10, 20, 50], help="numbers of hints")
    p.add_argument("--limit", type=int, help="at most this many test images per source")
    p.add_argument("--seed", type=int, default=0, help="seed of the hint draw")
    p.add_argument("--hints", help="hints JSON to read (or write, if missing); default OUT/hints.json")
    p.add_argument("--no-baselines", action="store_true", help="only the given models")
    p.add_argument("--regions", action="store_true",
                   help="region metrics instead (hinted-region accuracy, bleed, intrusion) on the clean test line art "
                        "and a seeded gapped copy, at the first --sizes; adds G'MIC where installed")
    p.add_argument("--learned", action="store_true",
                   help="whether the learned part shows (issue 14): unhinted-region accuracy against white at 0, 2 "
                        "and 5 hints, colour change between seeds and latent shifts, reference-mode palette pull, "
                        "shading gain and halos; needs --weights; at the first --sizes")
    p.add_argument("--split", default="test", choices=["test", "val"],
                   help="split to evaluate on (val to choose settings and models, test to report; default test)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_evaluate)

    from linecolor.bench import add_bench_arguments

    p = sub.add_parser("bench", help="measure latency, throughput and memory",
                       description="Latency p50/p95 of the pipeline and the raw network, batch throughput, scaling "
                                   "with pixel count, training throughput and peak memory; --compare runs two "
                                   "weights directories or execution paths side by side.")
    add_bench_arguments(p)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("serve", help="start the web studio",
                       description="Serve the web studio with waitress. Binds 127.0.0.1 unless told otherwise.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any free port)")
    p.add_argument("--weights", help="model directory (default: the bundled model)")
    defaults = ServerConfig()
    p.add_argument("--queue-size", type=int, default=defaults.queue_size,
                   help=f"requests that may wait for the model (default {defaults.queue_size})")
    p.add_argument("--threads", type=int, default=defaults.threads,
                   help=f"server worker threads (default {defaults.threads})")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="a host name the studio answers to (repeatable); default: the loopback names, plus the "
                        "--host address, or any name when bound to all interfaces")
    p.set_defaults(func=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LinecolorError as exc:
        print(f"linecolor {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file-system failure outside the paths checked above (weights, run folders)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"linecolor {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"linecolor {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
