"""512² on the *whole* test split for the bundled model, region fill and hint fill — Levin left out.

`linecolor evaluate --sizes 512` runs every baseline, and Levin et al. takes ≈ 13 s an image at 512² on a 2-core
CPU (≈ 2 h for the 377 test images), so docs/eval/512/results.md covers the first 30 images per source. This
script runs the same protocol (same seed, same hints as the evaluate command draws) on all of them without Levin:

    .venv/bin/python scripts/eval512_without_levin.py runs/eval512-full

and prints the combined and per-source PSNR rows; results.csv lands in the output folder
(docs/eval/512/results-all-377-no-levin.csv is one such run).
"""

from __future__ import annotations

import argparse
import csv

from linecolor.evaluation import baselines
from linecolor.evaluation import protocol
from linecolor.evaluation.run import DATA_FILES
from linecolor.inference.pipeline import DEFAULT_WEIGHTS_DIR

KS = [0, 1, 2, 5, 10, 20, 50]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS_DIR))
    args = parser.parse_args()
    paths = {s: f"{args.data_root}/{DATA_FILES[s]}" for s in ("openmoji", "dicebear", "fluent")}
    doc = protocol.sample_eval_hints(list(paths), paths, sizes=[512], ks=KS, seed=0, limit_per_source=None)
    methods = {"ladder": protocol.model_method(args.weights), "region_fill": baselines.region_fill,
               "hint_fill": baselines.hint_fill}
    protocol.evaluate(methods, doc, paths, out_dir=args.out, progress=False)
    with open(f"{args.out}/results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for test_set in ("combined", "openmoji", "dicebear", "fluent"):
        for method in methods:
            by_k = {int(r["k"]): r for r in rows if r["test_set"] == test_set and r["method"] == method}
            print(test_set, method, " ".join(f"{float(by_k[k]['psnr']):.3f}" for k in KS))


if __name__ == "__main__":
    main()
