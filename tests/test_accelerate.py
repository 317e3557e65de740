"""Data-parallel training with `accelerate launch`: two CPU processes (gloo), one saved model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from transformers import AutoModel

from .conftest import DATA_DIR, REPO_ROOT


def test_two_process_accelerate_launch_trains_and_saves_one_model(tmp_path):
    output_dir = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO_ROOT / "examples" / "run_mlc.py"),
        "--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions",
        "--output_dir", str(output_dir), "--do_train", "--do_predict", "--use_cpu", "true",
        "--embedding_size", "16", "--hidden_size", "16", "--per_device_train_batch_size", "8",
        "--num_train_epochs", "1", "--num_beams", "2", "--disable_tqdm", "true",
    ]  # fmt: skip
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    state = json.loads((output_dir / "trainer_state.json").read_text())
    # 400 texts, 8 per process and step, 2 processes: 25 optimizer steps in the epoch, not 50.
    assert state["global_step"] == 25 and state["train_batch_size"] == 8
    run_log = (output_dir / "run_mlc.log").read_text(encoding="utf-8")  # transformers' messages go there
    assert "Total train batch size (w. parallel, distributed & accumulation) = 16" in run_log
    assert sorted(path.name for path in output_dir.glob("*.safetensors")) == ["model.safetensors"]
    assert len((output_dir / "predictions.jsonl").read_text().splitlines()) == 100
    model = AutoModel.from_pretrained(output_dir)
    assert model.config.hidden_size == 16
