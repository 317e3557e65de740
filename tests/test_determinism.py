"""Determinism on CPU: two runs of `examples/run_mlc.py` with the same seed give the same trained weights (every
tensor, bit for bit, at every checkpoint), per-step losses, metrics and predictions."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from .conftest import assert_same_outcome, assert_same_weights, seeded_run_argv, timing_free
from .test_run_mlc import run_mlc


def test_same_seed_gives_identical_weights_metrics_and_predictions(seeded_run, tmp_path):
    reference_dir, reference_results = seeded_run
    output_dir = tmp_path / "out"
    results = run_mlc.main(seeded_run_argv(output_dir))

    assert_same_outcome(output_dir, results, reference_dir, reference_results)
    assert timing_free(results["train"]) == timing_free(reference_results["train"])
    checkpoints = sorted(path.name for path in output_dir.glob("checkpoint-*"))
    assert checkpoints == sorted(path.name for path in reference_dir.glob("checkpoint-*")) and checkpoints
    for checkpoint in checkpoints:
        assert_same_weights(output_dir / checkpoint, reference_dir / checkpoint)
    # Training moved the weights, so this is not the equality of two identical initialisations left untouched.
    final, earlier = (load_file(folder / "model.safetensors") for folder in (output_dir, output_dir / checkpoints[0]))
    assert any(not torch.equal(final[name], earlier[name]) for name in final)
