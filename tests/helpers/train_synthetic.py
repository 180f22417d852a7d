"""Run the trainer on synthetic pairs in a subprocess (used by the kill/resume, SIGTERM and torchrun tests).

Usage: python train_synthetic.py RUN_DIR STEPS [CHECKPOINT_EVERY]
"""

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import SyntheticPairs, tiny_experiment  # noqa: E402

from linecolor.training.trainer import train  # noqa: E402

if __name__ == "__main__":
    run_dir, steps = sys.argv[1], int(sys.argv[2])
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    config = tiny_experiment(steps=steps, checkpoint_every=every, keep_checkpoints=3)
    config = replace(config, train=replace(config.train, num_threads=1))
    result = train(config, run_dir, resume="auto", progress=False, pairs=SyntheticPairs(8, 64))
    print(f"RESULT status={result.status} start={result.start_step} final={result.final_step}", flush=True)
