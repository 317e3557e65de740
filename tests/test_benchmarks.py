"""The speed benchmark runs end to end on shipped texts and writes every figure; its FLOP counter matches a hand count.
Nothing here times anything: the figures only have to exist, be finite and be positive."""

from __future__ import annotations

import json
import math

import pytest
import torch
from accelerate.state import AcceleratorState

from su4mlc_hf.modeling_su4mlc import cpu_supports_bf16

from .conftest import DATA_DIR, REPO_ROOT, load_script, save_tiny_model_and_tokenizer, tiny_config

speed = load_script(REPO_ROOT / "benchmarks" / "speed.py", "benchmarks_speed")

PHASE_FIGURES = (
    "documents",
    "seconds",
    "documents_per_second",
    "words_per_second",
    "gflop_per_document",
    "achieved_gflops",
    "floor_documents_per_second",
    "ratio_to_floor",
    "peak_rss_mib",
)


def test_flop_counter_matches_a_hand_count():
    # embedding 4, hidden 6 (3 per direction), 8 labels + PAD/BOS/EOS = 11 label tokens, MDC kernel 3, rates 1-2-3.
    config = tiny_config(embedding_size=4, hidden_size=6)
    flops = speed.count_forward_flops(config, num_words=20, decoder_steps=2)
    # 20 words → 18, 14, 8 positions after the three convolutions (kernel 3, dilations 1, 2, 3, no padding).
    assert speed.semantic_unit_count(config, 20) == [18, 14, 8]
    assert flops["encoder_lstm"] == 20 * 2 * (2 * 4 * 3 * (4 + 3))  # words · directions · 2·4d·(input + d)
    assert flops["mdc"] == (18 + 14 + 8) * 2 * 3 * 6 * 6  # positions · 2·kernel·hidden²
    # per step and attention: the query projection W_aᵀ s_t (2·hidden²), scores and context over the 8 units or the
    # 20 words (2·2·hidden·length), and W_c (2·hidden → hidden)
    assert flops["attention"] == 2 * ((72 + 2 * 2 * 6 * 8 + 2 * 12 * 6) + (72 + 2 * 2 * 6 * 20 + 2 * 12 * 6))
    assert flops["decoder_lstm"] == 2 * 2 * 4 * 6 * (4 + 6)
    assert flops["output_layer"] == 2 * 2 * 12 * 11  # o_t = [s'_t; s̃_t] has 12 features
    assert flops["total"] == 6720 + 8640 + 2208 + 960 + 528 == 19056

    # A text shorter than the receptive field (13 words) is zero-extended to it: one unit.
    assert speed.semantic_unit_count(config, 5) == [11, 7, 1]
    # Word attention only: no MDC, one attention; the output layer reads hidden_size features.
    word_only = speed.count_forward_flops(tiny_config(embedding_size=4, hidden_size=6, attention="word"), 20, 2)
    assert word_only["mdc"] == 0 and word_only["attention"] == 2 * (72 + 2 * 2 * 6 * 20 + 2 * 12 * 6)
    assert word_only["output_layer"] == 2 * 2 * 6 * 11


def test_flop_counter_matches_the_model_parameters():
    """Every weight matrix is counted once per use: the per-word and per-step coefficients equal the parameter
    counts of the layers they use (2 FLOPs per weight per use)."""
    config = tiny_config(embedding_size=12, hidden_size=16)
    model = speed.SU4MLCForMultiLabelClassification(config)
    short, long_ = speed.count_forward_flops(config, 40, 3), speed.count_forward_flops(config, 41, 3)
    lstm_weights = sum(p.numel() for name, p in model.encoder.lstm.named_parameters() if "weight" in name)
    assert long_["encoder_lstm"] - short["encoder_lstm"] == 2 * lstm_weights
    conv_weights = sum(conv.weight.numel() for conv in model.encoder.mdc.convolutions)
    assert long_["mdc"] - short["mdc"] == 2 * conv_weights  # one more word, one more position in every layer
    one_step, two_steps = speed.count_forward_flops(config, 40, 1), speed.count_forward_flops(config, 40, 2)
    decoder_lstm_weights = sum(p.numel() for name, p in model.decoder.lstm.named_parameters() if "weight" in name)
    assert two_steps["decoder_lstm"] - one_step["decoder_lstm"] == 2 * decoder_lstm_weights
    assert two_steps["output_layer"] - one_step["output_layer"] == 2 * model.decoder.output_layer.weight.numel()
    attention_weights = sum(p.numel() for p in model.decoder.attentions.parameters())  # W_a and W_c of each
    units, words = speed.semantic_unit_count(config, 40)[-1], 40
    memory_reads = 2 * 2 * config.hidden_size * (units + words)  # scores and context
    assert two_steps["attention"] - one_step["attention"] == 2 * attention_weights + memory_reads


SAMPLE = DATA_DIR / "goemotions" / "train.tsv"


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each benchmark run builds an `Accelerator`, whose settings accelerate keeps once per process and will not
    change (another mixed precision raises): every test starts without them, as a new run of the script does."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def run_benchmark(output, *arguments: str) -> dict:
    """Runs the benchmark in-process on the shipped GoEmotions sample, on this process's threads."""
    return speed.main(
        [
            "--train-file", str(SAMPLE), "--test-file", str(SAMPLE), "--quick", "--repeats", "1",
            "--threads", str(torch.get_num_threads()), "--output", str(output), *arguments,
        ]
    )  # fmt: skip


def test_speed_benchmark_writes_every_figure(tmp_path):
    output = tmp_path / "speed-tiny.json"
    results = run_benchmark(
        output, "--config", "tiny", "--train-batches", "2", "--test-documents", "24", "--decode-batch-sizes", "8", "16"
    )
    written = json.loads(output.read_text())
    assert written == json.loads(json.dumps(results))
    assert written["config"] == "tiny" and written["machine"]["cores"] >= 1
    assert written["mixed_precision"] == "no" and written["floor_dtype"] == "float32"
    assert written["model"]["hidden_size"] == 16 and written["model"]["parameters"] > 0

    for rate in [*written["matmul_gflops"].values(), written["floor_gflops"], written["convolution_gflops"]]:
        assert math.isfinite(rate) and rate > 0
    phases = [written["training"], *written["decoding"]]
    assert written["training"]["batches_timed"] == 2
    assert {(phase["num_beams"], phase["batch_size"]) for phase in written["decoding"]} == {
        (1, 8), (1, 16), (5, 8), (5, 16)
    }
    for phase in phases:
        for figure in PHASE_FIGURES:
            assert math.isfinite(phase[figure]) and phase[figure] > 0, (figure, phase)
    assert all(phase["documents"] == 24 for phase in written["decoding"])
    assert set(written["beam_to_greedy_cost"]) == {"beam 5, batch 8", "beam 5, batch 16"}
    assert all(math.isfinite(cost) and cost > 0 for cost in written["beam_to_greedy_cost"].values())


def test_speed_benchmark_decodes_with_a_saved_model(tmp_path):
    """With `--model`, decoding uses the saved model and its tokenizer; training trains a fresh model of its shape."""
    saved, _ = save_tiny_model_and_tokenizer(tmp_path / "model")
    results = run_benchmark(
        tmp_path / "speed.json", "--model", str(tmp_path / "model"), "--train-batches", "1", "--test-documents", "8",
        "--decode-batch-sizes", "8", "--beams", "1",
    )  # fmt: skip
    assert results["model"]["decoding_model"] == str(tmp_path / "model")
    assert results["model"]["hidden_size"] == saved.config.hidden_size
    assert results["model"]["word_vocabulary"] == saved.config.source_vocab_size
    (greedy,) = results["decoding"]
    assert greedy["documents"] == 8 and greedy["documents_per_second"] > 0


def test_speed_benchmark_trains_and_decodes_under_bf16_autocast(tmp_path):
    """`--mixed-precision bf16 --cpu`: training and decoding run their products in bfloat16 (every linear layer's
    output, seen by a hook) and still give finite figures, a finite loss and label sequences; the floor is measured
    in bfloat16 too. On a CPU without bfloat16 kernels, the benchmark refuses."""
    if not cpu_supports_bf16():
        # Without bfloat16 kernels the benchmark refuses at once, naming the CPU, and writes nothing.
        with pytest.raises(SystemExit, match="has no bfloat16 support"):
            run_benchmark(tmp_path / "speed-bf16.json", "--config", "tiny", "--mixed-precision", "bf16", "--cpu")
        assert not (tmp_path / "speed-bf16.json").exists()
        return
    output_dtypes = set()  # (training?, dtype) of every nn.Linear output

    def record_dtype(module, inputs, output):
        if isinstance(module, torch.nn.Linear):
            output_dtypes.add((module.training, output.dtype))

    hook = torch.nn.modules.module.register_module_forward_hook(record_dtype)
    try:
        run_benchmark(
            tmp_path / "speed-bf16.json", "--config", "tiny", "--mixed-precision", "bf16", "--cpu",
            "--train-batches", "2", "--test-documents", "16", "--decode-batch-sizes", "8",
        )  # fmt: skip
    finally:
        hook.remove()
    assert output_dtypes == {(True, torch.bfloat16), (False, torch.bfloat16)}

    written = json.loads((tmp_path / "speed-bf16.json").read_text())
    assert written["mixed_precision"] == "bf16" and written["floor_dtype"] == "bfloat16"
    assert written["device"] == speed.cpu_model_name()
    training = written["training"]
    for figure in PHASE_FIGURES:
        assert math.isfinite(training[figure]) and training[figure] > 0, figure
    assert math.isfinite(training["final_loss"]) and training["final_loss"] > 0
    assert training["peak_device_memory_mib"] is None  # no GPU memory on the CPU
    assert {(phase["num_beams"], phase["documents"]) for phase in written["decoding"]} == {(1, 16), (5, 16)}
    # Every returned sequence ends with EOS; more than one token per text on average means labels were emitted.
    assert all(phase["mean_generated_tokens_per_document"] > 1 for phase in written["decoding"])


def test_fp16_is_refused_on_a_cpu(tmp_path):
    """accelerate runs float32 where fp16 autocast is asked on a CPU: the benchmark stops instead of writing
    float32 figures labelled fp16."""
    with pytest.raises(SystemExit, match="fp16 needs a GPU"):
        run_benchmark(tmp_path / "speed-fp16.json", "--config", "tiny", "--mixed-precision", "fp16", "--cpu")
    assert not (tmp_path / "speed-fp16.json").exists()
