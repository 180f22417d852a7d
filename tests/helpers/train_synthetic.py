"""Run the trainer on synthetic pairs in a subprocess (used by the kill/resume, SIGTERM and torchrun tests).

Usage: python train_synthetic.py RUN_DIR STEPS [CHECKPOINT_EVERY]

With ``LINECOLOR_TEST_KILL_IN_SAVE=N`` the process SIGKILLs itself halfway through writing the weights file of the
step-N checkpoint (a real kill at the worst moment, for the durability test). ``LINECOLOR_TEST_WORKERS=N`` loads
the data in N worker processes.
"""

import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import SyntheticPairs, tiny_experiment  # noqa: E402

from linecolor.training.trainer import train  # noqa: E402

def _kill_halfway_through_saving(step: int) -> None:
    from linecolor.training import checkpoint

    real_save = checkpoint.save_file

    def save_file(tensors, filename, *args, **kwargs):
        if f"step-{step:08d}" in str(filename):
            real_save(tensors, filename, *args, **kwargs)
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[: len(data) // 2])  # half a file on disk, then the kill
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(tensors, filename, *args, **kwargs)

    checkpoint.save_file = save_file


if __name__ == "__main__":
    if os.environ.get("LINECOLOR_TEST_KILL_IN_SAVE"):
        _kill_halfway_through_saving(int(os.environ["LINECOLOR_TEST_KILL_IN_SAVE"]))
    run_dir, steps = sys.argv[1], int(sys.argv[2])
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    config = tiny_experiment(steps=steps, checkpoint_every=every, keep_checkpoints=3)
    config = replace(config, train=replace(config.train, num_threads=1),
                     data=replace(config.data, num_workers=int(os.environ.get("LINECOLOR_TEST_WORKERS", "0"))))
    result = train(config, run_dir, resume="auto", progress=False, pairs=SyntheticPairs(8, 64))
    print(f"RESULT status={result.status} start={result.start_step} final={result.final_step}", flush=True)
