"""Interrupted training: `examples/run_mlc.py` killed between checkpoints, or failing in the middle of a save,
resumes from its last complete checkpoint when started again with the same `--output_dir`, and ends exactly where
the uninterrupted run ends (on CPU, same seed: bit-identical weights, no tolerance)."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers.trainer_utils import get_last_checkpoint

from su4mlc_hf.output_folder import LOCK_NAME, RUN_RECORD_NAME
from su4mlc_hf.trainer import CHECKPOINT_STAGING_PREFIX, SU4MLCTrainer

from .conftest import (
    REPO_ROOT, assert_same_outcome, assert_same_weights, seeded_run_argv, timing_free, training_log,
)  # fmt: skip
from .test_run_mlc import run_mlc

# The seeded run: 3 epochs of 10 steps, checkpoints at steps 12, 24 and 30.
FIRST_CHECKPOINT, SECOND_CHECKPOINT, LAST_STEP = 12, 24, 30


def resume(output_dir: Path, argv: list[str], caplog) -> dict:
    """Starts the run again in `output_dir`, checks that it resumed from the last checkpoint, returns its results."""
    last_checkpoint = get_last_checkpoint(output_dir)
    with caplog.at_level(logging.INFO, logger="run_mlc"):
        results = run_mlc.main(argv)
    assert f"Resuming from the last checkpoint in the output folder: {last_checkpoint}" in caplog.text
    assert not list(output_dir.glob(f"{CHECKPOINT_STAGING_PREFIX}*"))  # the next save cleaned up
    return results


def test_killed_between_checkpoints_resumes_to_the_uninterrupted_weights(seeded_run, tmp_path, caplog):
    reference_dir, reference_results = seeded_run
    output_dir = tmp_path / "out"
    argv = seeded_run_argv(output_dir)
    process = subprocess.Popen(
        [sys.executable, "-u", str(REPO_ROOT / "examples" / "run_mlc.py"), *argv],
        cwd=tmp_path,
        # Bit-identical weights need the same thread count on both sides of the kill: the run killed here and the
        # reference and the resumed run in this process (which an earlier test may have changed).
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, steps_logged = [], 0
    try:
        for line in process.stdout:
            output.append(line)
            steps_logged += line.startswith("{'loss'")  # one log line per step
            # Two steps past the first checkpoint, ten before the next one: kill -9.
            if steps_logged >= FIRST_CHECKPOINT + 2 and (output_dir / f"checkpoint-{FIRST_CHECKPOINT}").is_dir():
                os.kill(process.pid, signal.SIGKILL)
                break
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL, "".join(output[-30:])
    # Killed before training ended. A slow kill may land after the second checkpoint: still between two.
    assert not (output_dir / "model.safetensors").exists()
    assert get_last_checkpoint(output_dir) in {
        str(output_dir / f"checkpoint-{step}") for step in (FIRST_CHECKPOINT, SECOND_CHECKPOINT)
    }

    results = resume(output_dir, argv, caplog)
    assert_same_outcome(output_dir, results, reference_dir, reference_results)


def test_failure_in_the_middle_of_a_save_leaves_the_previous_checkpoint_last(tmp_path, monkeypatch, caplog):
    """The save at step 24 fails after the weights and the optimizer are written, before the RNG and trainer states:
    no `checkpoint-24` exists. (transformers alone leaves one, with weights but no `trainer_state.json`, which
    `get_last_checkpoint` picks and resuming fails on.) With best-model tracking and `save_total_limit`, which must
    see only complete checkpoints, where they stay."""
    output_dir = tmp_path / "out"
    argv = [
        *seeded_run_argv(output_dir), "--eval_strategy", "steps", "--eval_steps", str(FIRST_CHECKPOINT),
        "--load_best_model_at_end", "true", "--metric_for_best_model", "loss", "--greater_is_better", "false",
        "--save_total_limit", "1",
    ]  # fmt: skip
    save_rng_state = SU4MLCTrainer._save_rng_state

    def fail_at_the_second_checkpoint(trainer, checkpoint_dir):
        if trainer.state.global_step == SECOND_CHECKPOINT:
            raise OSError(errno.EIO, "Input/output error (simulated)")
        save_rng_state(trainer, checkpoint_dir)

    with monkeypatch.context() as patch:
        patch.setattr(SU4MLCTrainer, "_save_rng_state", fail_at_the_second_checkpoint)
        with pytest.raises(OSError, match="simulated"):
            run_mlc.main(argv)
    staged = output_dir / f"{CHECKPOINT_STAGING_PREFIX}{SECOND_CHECKPOINT}" / f"checkpoint-{SECOND_CHECKPOINT}"
    assert (staged / "model.safetensors").is_file() and not (staged / "trainer_state.json").exists()
    first_checkpoint = output_dir / f"checkpoint-{FIRST_CHECKPOINT}"
    assert get_last_checkpoint(output_dir) == str(first_checkpoint)
    # The first evaluation is the best so far, recorded where its checkpoint stays (not in the staging folder).
    state = json.loads((first_checkpoint / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(first_checkpoint)

    resume(output_dir, argv, caplog)
    best_checkpoint = Path(json.loads((output_dir / "trainer_state.json").read_text())["best_model_checkpoint"])
    # save_total_limit=1 with load_best_model_at_end keeps the best checkpoint only, and the final model is its.
    assert sorted(output_dir.glob("checkpoint-*")) == [best_checkpoint]
    assert_same_weights(output_dir, best_checkpoint)


# Drives the kill-and-rerun loop of the final phase: imports run_mlc once, then for each line `NAME N` on stdin forks a
# fresh process that runs the command and SIGKILLs itself just before the N-th file it renames into place as
# `output_dir/NAME` (so every file before it is whole and NAME is not yet replaced: the state a kill anywhere in
# NAME's write leaves); prints the child's exit code. Forking saves each rerun the seconds of importing torch.
KILL_DRIVER = r"""
import json, os, signal, sys
from pathlib import Path
from tests.conftest import REPO_ROOT, load_script

run_mlc = load_script(REPO_ROOT / "examples" / "run_mlc.py", "run_mlc")
output_dir, log_path, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
replace = os.replace
for line in sys.stdin:
    name, occurrence = line.split()
    child = os.fork()
    if child == 0:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(log, 1), os.dup2(log, 2)
        renamed = 0

        def replace_or_die(source, target):
            global renamed
            if Path(target) == output_dir / name:
                renamed += 1
                if renamed == int(occurrence):
                    os.kill(os.getpid(), signal.SIGKILL)
            replace(source, target)

        os.replace = replace_or_die
        try:
            run_mlc.main(argv)
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    print(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]), flush=True)
"""
# The kill points of the final phase, in the order the run writes: the final model (its weights), the train results
# and state, the evaluation, the predictions and their scores, the card, and the record of the finished card.
FINAL_PHASE_KILL_POINTS = [
    ("model.safetensors", 1), ("train_results.json", 1), ("all_results.json", 1), ("trainer_state.json", 1),
    ("eval_results.json", 1), ("predictions.jsonl", 1), ("predict_results.json", 1), ("README.md", 1),
    (RUN_RECORD_NAME, 2),
]  # fmt: skip


def assert_every_file_whole(output_dir: Path) -> None:
    """Each output file parses whole: JSON, JSON Lines, safetensors, the card's metadata."""
    for path in output_dir.iterdir():
        if path.name.endswith(".json"):
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            assert path.read_text().endswith("\n")
            [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix == ".safetensors":
            load_file(path)
        elif path.name == "README.md":
            assert ModelCard.load(path).data.model_name


def test_killed_at_every_point_of_the_final_phase_the_rerun_finishes_the_same_run(seeded_run, tmp_path):
    reference_dir, reference_results = seeded_run
    output_dir, log_path = tmp_path / "out", tmp_path / "runs.log"
    driver = subprocess.Popen(
        [sys.executable, "-c", KILL_DRIVER, str(output_dir), str(log_path), *seeded_run_argv(output_dir)],
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for name, occurrence in [*FINAL_PHASE_KILL_POINTS, ("never", 1)]:
            driver.stdin.write(f"{name} {occurrence}\n")
            driver.stdin.flush()
            exit_code = int(driver.stdout.readline())
            expected = 0 if name == "never" else -signal.SIGKILL
            assert exit_code == expected, f"killed at {name}: exit {exit_code}\n{log_path.read_text()[-3000:]}"
            assert_every_file_whole(output_dir)
    finally:
        driver.stdin.close()
        driver.wait(timeout=60)
        driver.stdout.close()

    # Training ran once, to its end: each run killed before the train phase was recorded was resumed from the last
    # checkpoint; later ones reused the saved model.
    resumed = FINAL_PHASE_KILL_POINTS.index(("eval_results.json", 1))
    assert log_path.read_text().count("Resuming from the last checkpoint") == resumed
    assert_same_weights(output_dir, reference_dir)
    for name in ("train_results.json", "eval_results.json", "all_results.json"):
        assert timing_free(json.loads((output_dir / name).read_text())) == timing_free(
            json.loads((reference_dir / name).read_text())
        ), name
    for name in ("predict_results.json", "predictions.jsonl", "README.md"):
        assert (output_dir / name).read_text() == (reference_dir / name).read_text(), name
    assert training_log(output_dir) == training_log(reference_dir)
    assert not list(output_dir.glob("_tmp-*")) and not list(output_dir.glob(".*.tmp"))

    # The same command once more: the run is finished, nothing but the lock is written, the results are the run's.
    def modified() -> dict[str, int]:
        return {path.name: path.stat().st_mtime_ns for path in output_dir.iterdir() if path.name != LOCK_NAME}

    before = modified()
    results = run_mlc.main(seeded_run_argv(output_dir))
    assert modified() == before
    assert timing_free(results["train"]) == timing_free(reference_results["train"])
    assert results["predict"] == reference_results["predict"]
