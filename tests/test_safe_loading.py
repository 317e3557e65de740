"""Safe loading: weights only as safetensors, nothing unpickled unless the user asks, a saved folder's code run only
with `trust_remote_code=True`.

Each attack file holds a pickle whose unpickling creates a marker file (`PICKLE_PAYLOAD_RUNS` shows that it does);
the tests check that the marker never appears."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from .conftest import run_without_package, save_tiny_model_and_tokenizer, seeded_run_argv
from .test_run_mlc import run_mlc

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle")
# What `Trainer._save_checkpoint` pickles with `torch.save`; transformers reads them back with `weights_only=True`.
CHECKPOINT_TRAINER_STATES = {"optimizer.pt", "scheduler.pt", "rng_state.pth"}


class CreatesMarker:
    """Unpickling this object calls `open(marker, "w")`: code run by a pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def write_payload(path: Path, marker: Path) -> None:
    """A `torch.save` file (a zip holding a pickle), as weights and trainer states are."""
    torch.save({"state": CreatesMarker(marker)}, path)


def test_the_pickle_payload_runs_code_when_unpickled(tmp_path):
    """The attack is real: an unrestricted unpickling of the payload creates the marker."""
    marker = tmp_path / "marker"
    write_payload(tmp_path / "payload.bin", marker)
    torch.load(tmp_path / "payload.bin", weights_only=False)
    assert marker.exists()


def test_saved_folders_hold_no_pickle_but_the_trainer_states_of_checkpoints(seeded_run):
    output_dir, _ = seeded_run
    final_files = {path.name for path in output_dir.iterdir() if path.is_file()}
    assert "model.safetensors" in final_files and not [name for name in final_files if name.endswith(PICKLE_SUFFIXES)]
    # The training arguments as JSON in place of transformers' pickled training_args.bin.
    assert json.loads((output_dir / "training_args.json").read_text())["seed"] == 0
    checkpoints = list(output_dir.glob("checkpoint-*"))
    assert checkpoints
    for checkpoint in checkpoints:
        pickles = {path.name for path in checkpoint.iterdir() if path.name.endswith(PICKLE_SUFFIXES)}
        assert pickles == CHECKPOINT_TRAINER_STATES and (checkpoint / "model.safetensors").is_file()


@pytest.mark.parametrize("trainer_state", sorted(CHECKPOINT_TRAINER_STATES))
def test_resuming_never_runs_a_pickled_trainer_state(seeded_run, tmp_path, trainer_state):
    """transformers 5.24 loads each trainer state with `torch.load(weights_only=True)`, which refuses the payload."""
    reference_dir, _ = seeded_run
    output_dir = tmp_path / "out"
    checkpoint = output_dir / "checkpoint-24"
    shutil.copytree(reference_dir / "checkpoint-24", checkpoint)
    marker = tmp_path / "marker"
    write_payload(checkpoint / trainer_state, marker)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        run_mlc.main(seeded_run_argv(output_dir))
    assert not marker.exists()


@pytest.mark.parametrize("attack_file", ["pytorch_model.bin", "training_args.bin"])
def test_a_pickle_beside_the_safetensors_weights_is_never_read(tmp_path, attack_file):
    model, _ = save_tiny_model_and_tokenizer(tmp_path)
    marker = tmp_path / "marker"
    write_payload(tmp_path / attack_file, marker)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert not marker.exists()
    weights = load_file(tmp_path / "model.safetensors")
    assert all(torch.equal(tensor, weights[name]) for name, tensor in loaded.state_dict().items())


def test_a_pickle_in_place_of_the_safetensors_weights_is_refused(tmp_path):
    save_tiny_model_and_tokenizer(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    marker = tmp_path / "marker"
    write_payload(tmp_path / "pytorch_model.bin", marker)
    with pytest.raises(OSError, match="no file named model.safetensors"):
        AutoModel.from_pretrained(tmp_path)
    # Asked for explicitly, a pickle is read, but by torch's restricted unpickler, which refuses the payload.
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        AutoModel.from_pretrained(tmp_path, use_safetensors=False)
    assert not marker.exists()


# Run where `su4mlc_hf` cannot be imported: loading a saved folder needs its code files.
LOAD_WITH_AND_WITHOUT_TRUST = r"""
import json
import os
import sys

from transformers import AutoConfig, AutoModel

folder, marker = sys.argv[1], sys.argv[2]
outcome = {}
for name, load in (("config", AutoConfig.from_pretrained), ("model", AutoModel.from_pretrained)):
    try:
        load(folder)
        outcome[name] = "loaded"
    except Exception as error:
        outcome[name] = f"{type(error).__name__}: {error}"
outcome["code_ran_without_trust"] = os.path.exists(marker)
AutoModel.from_pretrained(folder, trust_remote_code=True)
outcome["code_ran_with_trust"] = os.path.exists(marker)
print("\n" + json.dumps(outcome))  # on a line of its own: the unanswered prompt ends without a line break
"""


def test_a_saved_folder_runs_its_code_only_with_trust_remote_code(tmp_path):
    folder = tmp_path / "model"
    save_tiny_model_and_tokenizer(folder)
    marker = tmp_path / "marker"
    for code_file in ("configuration_su4mlc.py", "modeling_su4mlc.py"):
        code = (folder / code_file).read_text(encoding="utf-8")
        (folder / code_file).write_text(f"{code}\nopen({str(marker)!r}, 'w').close()\n", encoding="utf-8")

    completed = run_without_package(LOAD_WITH_AND_WITHOUT_TRUST, str(folder), str(marker), folder=tmp_path)
    assert completed.returncode == 0, completed.stderr
    # transformers asked whether to run the code; with nothing on stdin it took that as a no.
    assert "Do you wish to run the custom code?" in completed.stdout
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    for name in ("config", "model"):
        assert outcome[name].startswith("ValueError: The repository") and "contains custom code" in outcome[name]
        assert "trust_remote_code=True" in outcome[name]
    assert not outcome["code_ran_without_trust"]
    assert outcome["code_ran_with_trust"]
