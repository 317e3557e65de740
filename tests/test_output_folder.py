"""The output folder of `examples/run_mlc.py`: a run refuses a folder that holds another run, one run at a time (a
killed run's lock is taken over), files written with the umask's mode, an unwritable folder or a full disk ends in
one clear line before (or instead of) a traceback deep in a save. Kills at every point of the final phase are in
`test_resume.py`."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from su4mlc_hf.output_folder import (
    LOCK_NAME,
    RUN_RECORD_NAME,
    OutputFolder,
    OutputFolderError,
    atomic_open,
    is_disk_full,
    staged_folder,
)

from .conftest import DATA_DIR, REPO_ROOT, assert_same_weights, seeded_run_argv, timing_free
from .test_run_mlc import TINY_MODEL_ARGS, run_mlc


@pytest.fixture
def finished_run(seeded_run, tmp_path) -> tuple[Path, dict]:
    """A copy of the finished seeded run, in `tmp_path/out`, and the results of the run."""
    reference_dir, reference_results = seeded_run
    output_dir = tmp_path / "out"
    shutil.copytree(reference_dir, output_dir)
    return output_dir, reference_results


def folder_state(folder: Path) -> dict[str, int]:
    """Each file's modification time, the lock's left out: what a run that does nothing leaves unchanged."""
    return {str(path): path.stat().st_mtime_ns for path in folder.rglob("*") if path.name != LOCK_NAME}


def short_run_argv(output_dir: Path, *extra: str) -> list[str]:
    """A run of one epoch on 16 training texts: seconds."""
    return [
        "--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions",
        "--output_dir", str(output_dir), "--do_train", "--max_train_samples", "16", "--max_eval_samples", "8",
        "--num_train_epochs", "1", *TINY_MODEL_ARGS, *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "change, named",
    [
        (["--hidden_size", "24"], "model.hidden_size: 16 -> 24"),
        (["--num_train_epochs", "1"], "training.num_train_epochs: 3.0 -> 1.0"),
        (["--max_train_samples", "60"], "data.max_train_samples: 80 -> 60"),
        (["--label_order", "rare_first"], "data.label_order: 'frequency' -> 'rare_first'"),
    ],
)
def test_a_finished_run_refuses_another_command_before_any_work(finished_run, change, named):
    output_dir, _ = finished_run
    before = folder_state(output_dir)
    with pytest.raises(OutputFolderError) as error:
        run_mlc.main([*seeded_run_argv(output_dir), *change])
    message = str(error.value)
    assert "\n" not in message and str(output_dir) in message and "a finished run" in message and named in message
    assert "--overwrite_output_dir" in message and "--resume_from_checkpoint" in message and "--output_dir" in message
    assert folder_state(output_dir) == before


def test_changed_data_files_are_named(tmp_path):
    """The same command on a data folder whose training file changed since the run (one label of one line)."""
    data_dir, output_dir = tmp_path / "goemotions", tmp_path / "out"
    shutil.copytree(DATA_DIR / "goemotions", data_dir)
    run_mlc.main(short_run_argv(output_dir, "--dataset_dir", str(data_dir)))
    lines = (data_dir / "train.tsv").read_text().splitlines(keepends=True)
    text, labels, identifier = lines[0].rstrip("\n").split("\t")
    lines[0] = "\t".join([text, "27" if labels != "27" else "0", identifier]) + "\n"
    (data_dir / "train.tsv").write_text("".join(lines))
    before = folder_state(output_dir)
    with pytest.raises(OutputFolderError, match=f"finished run .*data.files.{data_dir / 'train.tsv'}: '[0-9a-f]+"):
        run_mlc.main(short_run_argv(output_dir, "--dataset_dir", str(data_dir)))
    assert folder_state(output_dir) == before


def test_resume_from_checkpoint_continues_a_finished_run_with_other_settings(finished_run):
    """The choice the refusal offers for training more: an explicit checkpoint, here the last one, and one more
    epoch. The folder then records the new run."""
    output_dir, _ = finished_run
    argv = [*seeded_run_argv(output_dir), "--num_train_epochs", "4"]
    results = run_mlc.main([*argv, "--resume_from_checkpoint", str(output_dir / "checkpoint-30")])
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 40
    assert results["train"]["epoch"] == 4.0
    record = json.loads((output_dir / RUN_RECORD_NAME).read_text())
    assert record["identity"]["training"]["num_train_epochs"] == 4.0
    assert set(record["phases"]) == {"train", "eval", "predict", "card"}
    before = folder_state(output_dir)
    assert run_mlc.main(argv)["train"] == results["train"]  # the same command without the flag: finished
    assert folder_state(output_dir) == before


def test_a_folder_without_record_is_checked_against_its_last_checkpoint(finished_run):
    """A folder written before records existed (here: the record deleted) and a command with another model: refused
    naming the checkpoint and the difference (it failed with a state-dict size mismatch inside the Trainer)."""
    output_dir, _ = finished_run
    (output_dir / RUN_RECORD_NAME).unlink()
    for name in ("train_results.json", "eval_results.json", "predict_results.json", "all_results.json"):
        (output_dir / name).unlink()  # an interrupted run
    with pytest.raises(OutputFolderError) as error:
        run_mlc.main([*seeded_run_argv(output_dir), "--hidden_size", "24"])
    assert str(error.value).startswith(
        f"The checkpoint {output_dir / 'checkpoint-30'} holds another model (config.hidden_size: 16 -> 24); pass "
        "--overwrite_output_dir"
    )
    assert not (output_dir / "train_results.json").exists()


def test_the_same_command_on_a_finished_run_does_nothing_and_returns_its_results(finished_run):
    output_dir, reference_results = finished_run
    before = folder_state(output_dir)
    results = run_mlc.main(seeded_run_argv(output_dir))
    assert folder_state(output_dir) == before
    assert results == {phase: reference_results[phase] for phase in ("train", "eval", "predict")}


def test_overwrite_output_dir_replaces_the_run(finished_run):
    output_dir, _ = finished_run
    results = run_mlc.main(short_run_argv(output_dir, "--overwrite_output_dir"))
    # The folder's old checkpoints (steps 12, 24, 30) are gone; the new run's one epoch of 2 steps is there.
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (output_dir / "predictions.jsonl").exists() and not (output_dir / "predict_results.json").exists()
    assert json.loads((output_dir / "all_results.json").read_text()).keys() == results["train"].keys() | results[
        "eval"
    ].keys()
    record = json.loads((output_dir / RUN_RECORD_NAME).read_text())
    assert record["identity"]["training"]["num_train_epochs"] == 1.0 and set(record["phases"]) == {"train", "eval", "card"}


def test_files_left_half_written_by_an_older_version_are_redone(finished_run, seeded_run):
    """An older version killed while writing its results left empty or cut files and no record: the same command
    (which crashed in transformers' `save_metrics` on the empty `all_results.json`) redoes them and ends like the
    uninterrupted run."""
    output_dir, reference_results = finished_run
    reference_dir, _ = seeded_run
    (output_dir / RUN_RECORD_NAME).unlink()
    (output_dir / "all_results.json").write_text("")
    (output_dir / "eval_results.json").write_text('{\n    "eval_micro_f1": 0.')
    predictions = (output_dir / "predictions.jsonl").read_text()
    (output_dir / "predictions.jsonl").write_text(predictions[: len(predictions) // 2])
    (output_dir / "model.safetensors").write_bytes(b"")

    results = run_mlc.main(seeded_run_argv(output_dir))
    assert timing_free(results["eval"]) == timing_free(reference_results["eval"])
    assert results["predict"] == reference_results["predict"]
    assert (output_dir / "predictions.jsonl").read_text() == predictions
    assert_same_weights(output_dir, reference_dir)
    all_results = json.loads((output_dir / "all_results.json").read_text())
    assert timing_free(all_results) == timing_free(json.loads((reference_dir / "all_results.json").read_text()))


def test_a_second_run_on_a_locked_folder_is_refused(tmp_path):
    output_dir = tmp_path / "out"
    with OutputFolder(output_dir):  # a run in progress
        with pytest.raises(OutputFolderError) as error:
            run_mlc.main(short_run_argv(output_dir))
    message = str(error.value)
    assert "\n" not in message and f"{output_dir} is in use by another run (process {os.getpid()} on" in message
    assert not list(output_dir.glob("checkpoint-*"))


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    output_dir = tmp_path / "out"
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys\nfrom su4mlc_hf.output_folder import OutputFolder\n"
         "OutputFolder(sys.argv[1]).__enter__()\nos.kill(os.getpid(), signal.SIGKILL)", str(output_dir)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    assert (output_dir / LOCK_NAME).read_text().startswith("process ")
    with OutputFolder(output_dir):
        assert (output_dir / LOCK_NAME).read_text().startswith(f"process {os.getpid()} on")
    assert "Took over the lock" in caplog.text and "no longer running" in caplog.text
    assert (output_dir / LOCK_NAME).read_text() == ""  # released


def test_files_are_whole_and_get_the_umask_mode(tmp_path):
    umask = os.umask(0o027)
    try:
        with staged_folder(tmp_path) as staging:
            (staging / "weights.bin").write_bytes(b"new")
            os.chmod(staging / "weights.bin", 0o600)  # as safetensors creates its files
            assert not (tmp_path / "weights.bin").exists()  # nothing appears before the block ends
        with pytest.raises(ValueError):
            with atomic_open(tmp_path / "results.json") as file:
                file.write('{"half": ')
                raise ValueError("the writer fails")
        with atomic_open(tmp_path / "card.md") as file:
            file.write("card")
    finally:
        os.umask(umask)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["card.md", "weights.bin"]  # no temporary left
    assert (tmp_path / "weights.bin").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "card.md").stat().st_mode & 0o777 == 0o640


def test_a_trained_folder_has_the_umask_mode(finished_run):
    output_dir, _ = finished_run  # written with the test process's umask
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md", "predictions.jsonl",
                 "all_results.json", "training_args.json", "trainer_state.json"):  # fmt: skip
        assert (output_dir / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    load_file(output_dir / "model.safetensors")


@pytest.fixture
def small_disk(tmp_path):
    """Mounts a RAM file system of the size asked for (root only) and yields its folder; unmounts it after."""
    mounted = []

    def mount(size: str, read_only: bool = False) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode:
            pytest.skip("mounting a small file system needs root")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_a_read_only_output_folder_fails_at_the_start(small_disk):
    output_dir = small_disk("1m", read_only=True)
    with pytest.raises(OutputFolderError) as error:
        run_mlc.main(short_run_argv(output_dir))
    message = str(error.value)
    assert message == (
        f"Cannot write in the output folder {output_dir}: Read-only file system; make it writable or choose another "
        "--output_dir."
    )


def test_too_little_free_space_fails_before_training(small_disk):
    output_dir = small_disk("256k")
    with pytest.raises(OutputFolderError) as error:
        run_mlc.main(short_run_argv(output_dir))
    message = str(error.value)
    assert re.fullmatch(
        f"The output folder {output_dir} has [0-9.]+ KB free, and this run needs about [0-9.]+ [KM]B \\(checkpoints and "
        "the final model\\); free some space or choose another --output_dir.",
        message,
    )
    assert not list(output_dir.glob("checkpoint-*"))


def test_a_full_disk_during_a_save_ends_in_one_clear_line(small_disk, monkeypatch):
    """The free-space estimate passes (here it is switched off; in life another program fills the disk), then the
    first checkpoint finds the disk full: one line names the folder and the free space, instead of torch's
    `inline_container.cc: unexpected pos`."""
    output_dir = small_disk("256k")
    monkeypatch.setattr(OutputFolder, "check_free_space", lambda folder, needed_bytes: None)
    with pytest.raises(OutputFolderError) as error:
        run_mlc.main(short_run_argv(output_dir))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"The disk of the output folder {output_dir} is full (")
    assert message.endswith("free some space and run the same command again (it resumes), or choose another --output_dir.")
    assert not list(output_dir.glob("checkpoint-*"))


def test_a_full_disk_elsewhere_names_that_folder(tmp_path):
    """A full disk met while writing outside the output folder (e.g. the `datasets` cache) names that folder."""
    cache = tmp_path / "cache"
    cache.mkdir()
    error = OSError(errno.ENOSPC, "No space left on device", str(cache / "cache-1.arrow"))
    assert is_disk_full(error) and is_disk_full(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos"))
    assert not is_disk_full(OSError(errno.EIO, "Input/output error"))
    message = str(OutputFolder(tmp_path / "out").disk_full_error(error))
    assert message.startswith(f"The disk of {cache} is full (") and "output folder" not in message.split(";")[0]


def test_the_command_refuses_another_run_in_one_expected_line(tmp_path, monkeypatch, capsys):
    """Through the command's entry point: the refusal is one line, an expected error (not one to report), and a
    setting the user left to the recipe is named as the recipe's, not as an argument default the run never used."""
    output_dir = tmp_path / "out"
    run_mlc.main(short_run_argv(output_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    capsys.readouterr()
    status = run_mlc.run(short_run_argv(output_dir, "--dropout", "0.1"))
    (line,) = capsys.readouterr().err.splitlines()
    assert status == 1 and "unexpected" not in line
    assert "model.dropout: 'from --recipe auto' -> 0.1" in line and "--overwrite_output_dir" in line
