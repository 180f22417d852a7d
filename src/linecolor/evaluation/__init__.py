"""Evaluation of hint-guided colourisation against the ground truth and classical baselines.

Protocol after Zhang et al. 2017 (see :mod:`linecolor.evaluation.protocol`): fixed, nested, seeded hints on the test
splits; PSNR, SSIM and hint adherence (CIEDE2000) per method × test set × K × size.

>>> from linecolor.evaluation import run_evaluation
>>> run_evaluation({"ladder": "weights/ladder"}, "eval_out", sizes=(256,))          # doctest: +SKIP

Modules:
    :mod:`~linecolor.evaluation.metrics`    PSNR, SSIM, hint adherence.
    :mod:`~linecolor.evaluation.baselines`  line_only, region_fill (paint bucket), levin (Levin et al. 2004),
                                            hint_fill (the previous composite), flat_regions (the region engine).
    :mod:`~linecolor.evaluation.regions`    region metrics on clean and gapped line art (``evaluate --regions``).
    :mod:`~linecolor.evaluation.gmic`       G'MIC's smart colouring as a peer (where ``gmic`` is installed).
    :mod:`~linecolor.evaluation.protocol`   hint sampling/saving, :func:`evaluate`, :func:`model_method`.
    :mod:`~linecolor.evaluation.report`     results.md / results.csv / psnr_vs_hints.png / grid.png.
    :mod:`~linecolor.evaluation.run`        :func:`run_evaluation`, everything in one call.
"""

from __future__ import annotations

from linecolor.evaluation.baselines import BASELINES, hint_fill, levin, line_only, region_fill
from linecolor.evaluation.metrics import hint_adherence, image_metrics, psnr, ssim
from linecolor.evaluation.protocol import (
    DEFAULT_KS,
    DEFAULT_SIZES,
    EvaluationResults,
    aggregate,
    evaluate,
    load_eval_hints,
    load_results,
    model_method,
    sample_eval_hints,
    save_eval_hints,
)
from linecolor.evaluation.report import write_report
from linecolor.evaluation.run import run_evaluation

__all__ = [
    "BASELINES",
    "DEFAULT_KS",
    "DEFAULT_SIZES",
    "EvaluationResults",
    "aggregate",
    "evaluate",
    "hint_adherence",
    "hint_fill",
    "image_metrics",
    "levin",
    "line_only",
    "load_eval_hints",
    "load_results",
    "model_method",
    "psnr",
    "region_fill",
    "run_evaluation",
    "sample_eval_hints",
    "save_eval_hints",
    "ssim",
    "write_report",
]
