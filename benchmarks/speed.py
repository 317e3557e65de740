"""Speed of SU4MLC on real texts, next to the compute floor of the same work on the same machine.

Measures, for one model configuration, on the GPU when there is one (`--cpu` keeps to the CPU):

* training throughput (documents/s and real, unpadded words/s): Adam (fused, as the trainer runs it), gradient
  clipping at 10, batches of 64 texts grouped by length so that a batch holds texts of similar length;
* decoding throughput through `generate()`, greedy and beam 5, at several batch sizes;
* peak resident memory of each phase, and on a GPU its peak allocated GPU memory;
* the compute floor: the model's FLOPs per document counted from its shapes ([`count_forward_flops`]), divided by
  the rate of a `torch.matmul` shaped like the model's largest products, measured in the same run on the same
  device, in the dtype the products run in (float32; bfloat16 or float16 with `--mixed-precision`). Training costs
  3x the forward FLOPs (the backward pass computes gradients of both the inputs and the weights of every product).

`accelerate` puts the model, the optimizer and the batches on the device and, with `--mixed-precision bf16` (CPU or
GPU) or `fp16` (GPU only, with loss scaling), runs training and decoding under its autocast, as the trainer does
with `bf16=True` / `fp16=True`. On a GPU the clock is read only once the device has run the timed work.

Each figure is printed with its ratio to the floor (measured speed / floor speed; 1.0 means the work ran at the
matmul rate; on a CPU above 1 is possible where PyTorch's oneDNN kernels, which run the LSTMs and convolutions,
outpace the MKL `torch.matmul`: the convolution rate printed next to the floor shows by how much) and written to
`benchmarks/results/speed-<config>.json`.

Decoding speed depends on how many labels the model emits, so decode with a trained model (`--model`, e.g. one
saved by `examples/run_mlc.py`); without one, decoding uses the model left by the few timed training steps.

    python benchmarks/speed.py --config cpu --model outputs/reuters-cpu     # emb = hidden = 256, whole test set
    python benchmarks/speed.py --config paper --model outputs/reuters-paper --train-batches 10 --test-documents 1024
    python benchmarks/speed.py --config paper --model outputs/reuters-paper-speed --mixed-precision bf16  # on a GPU
    python benchmarks/speed.py --config tiny --train-file tests/data/goemotions/train.tsv \
        --test-file tests/data/goemotions/train.tsv --quick       # add --mixed-precision bf16 --cpu: bf16 on a CPU

Texts are read from JSONL (`{"title", "text", "labels"}`, a document is title + " " + text) or from TSV
(`text<TAB>comma-separated labels[<TAB>id]`, the GoEmotions layout).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import accelerate  # noqa: E402
import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402

from su4mlc_hf import LabelVocabulary, SU4MLCConfig, SU4MLCForMultiLabelClassification  # noqa: E402
from su4mlc_hf.label_vocab import WORD_PAD_ID  # noqa: E402
from su4mlc_hf.modeling_su4mlc import cpu_supports_bf16  # noqa: E402
from su4mlc_hf.tokenization_su4mlc import SU4MLCTokenizer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
REUTERS_DIR = REPO_ROOT.parent / "shared" / "data" / "reuters21578" / "modapte"

# Model sizes: the paper's (512), the one that trains in minutes on a 2-core CPU (256), and one for tests.
CONFIGS = {
    "paper": dict(embedding_size=512, hidden_size=512),
    "cpu": dict(embedding_size=256, hidden_size=256),
    "tiny": dict(embedding_size=16, hidden_size=16),
}
TRAIN_BATCH_SIZE = 64
LEARNING_RATE = 3e-4  # the paper's, as `SU4MLCTrainingArguments`
MAX_GRAD_NORM = 10.0
MAX_SOURCE_LENGTH = 500  # words; the authors' code truncates Reuters documents here too
WORD_VOCAB_SIZE = 50_000
# The dtype the model's products run in under each `--mixed-precision`: the floor's matmul is measured in it.
COMPUTE_DTYPES = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Devices for which torch has a fused AdamW kernel (the trainer's default optimizer); elsewhere AdamW runs its
# default implementation.
FUSED_ADAMW_DEVICES = ("cpu", "cuda")


# --------------------------------------------------------------------------------------------------------------
# FLOP counter


def semantic_unit_count(config: SU4MLCConfig, num_words: int) -> list[int]:
    """Output positions of each MDC convolution for a text of `num_words` words (the model zero-extends texts
    shorter than `config.min_source_length` to that length, so they have one unit)."""
    length = max(num_words, config.min_source_length)
    counts = []
    for rate in config.mdc_dilation_rates:
        length = length + 2 * config.mdc_padding - (config.mdc_kernel_size - 1) * rate
        counts.append(length)
    return counts


def count_forward_flops(config: SU4MLCConfig, num_words: int, decoder_steps: int) -> dict[str, int]:
    """
    FLOPs of one forward pass of one text, counted from the model's shapes.

    A multiply-add is 2 FLOPs; only matrix products are counted (the LSTM gate non-linearities, softmax, ReLU,
    biases and embedding look-ups add O(width) per position against the O(width²) of the products, about 1 %).
    Padding is not counted: this is the work the text itself needs.

    Args:
        config ([`SU4MLCConfig`]): the model's configuration.
        num_words (`int`): real words of the text (n).
        decoder_steps (`int`): label tokens the decoder reads (T: the labels plus EOS in training; the tokens
            generated, per beam, in decoding).

    Returns:
        FLOPs by component:
        * `encoder_lstm`: per word, layer and direction, 2·4d·(input + d) (d = hidden/2 with concatenated
          directions, hidden with summed ones; input = embedding size in layer 1, 2d above);
        * `mdc`: per output position of each convolution, 2·kernel·hidden²;
        * `decoder_lstm`: per step and layer, 2·4·hidden·(input + hidden) (input = embedding size in layer 1);
        * `attention`: per step and attention layer, the query projection W_aᵀ s_t, 2·hidden² (the model scores
          (W_aᵀ s_t)ᵀ x_i, see `SU4MLCAttention`), scores and context 2·2·hidden·memory length, and the output
          projection W_c, 2·(2·hidden)·hidden;
        * `output_layer`: per step, 2·(output features)·(label vocabulary);
        * `total`: their sum.
    """
    hidden, embedding = config.hidden_size, config.embedding_size
    direction = hidden // 2 if config.direction_merge == "concat" else hidden
    flops = dict.fromkeys(("encoder_lstm", "mdc", "decoder_lstm", "attention", "output_layer"), 0)
    for layer in range(config.encoder_layers):
        layer_input = embedding if layer == 0 else 2 * direction
        flops["encoder_lstm"] += num_words * 2 * (2 * 4 * direction * (layer_input + direction))

    memory_lengths = {"words": num_words}
    if config.attention in ("mdc", "additive", "hybrid"):
        unit_counts = semantic_unit_count(config, num_words)
        flops["mdc"] = sum(count * 2 * config.mdc_kernel_size * hidden * hidden for count in unit_counts)
        memory_lengths["units"] = unit_counts[-1]
    memories = {"none": (), "word": ("words",), "mdc": ("units",)}.get(config.attention, ("units", "words"))

    for name in memories:
        query_projection, output_projection = 2 * hidden * hidden, 2 * 2 * hidden * hidden
        scores_and_context = 2 * 2 * hidden * memory_lengths[name]
        flops["attention"] += decoder_steps * (query_projection + scores_and_context + output_projection)
    for layer in range(config.decoder_layers):
        layer_input = embedding if layer == 0 else hidden
        flops["decoder_lstm"] += decoder_steps * 2 * 4 * hidden * (layer_input + hidden)
    output_features = 2 * hidden if config.attention == "hybrid" and config.hybrid_output == "concat" else hidden
    flops["output_layer"] = decoder_steps * 2 * output_features * config.vocab_size
    flops["total"] = sum(flops.values())
    return flops


TRAINING_FLOPS_PER_FORWARD_FLOP = 3  # forward, then gradients of inputs and of weights of every product


# --------------------------------------------------------------------------------------------------------------
# Machine measurements


def synchronize(device: torch.device) -> None:
    """Waits until `device` has run the work queued on it: CUDA runs kernels asynchronously, so a clock read right
    after a call that launches them would not count them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_rate(function, flops: int, calls: int, device: torch.device) -> float:
    """GFLOP/s of `function()` (which does `flops` FLOPs on `device`): warmed up, then the best of three trials of
    `calls` calls (the machine is shared: a slower trial lost time to other processes)."""
    for _ in range(3):  # warm-up: threads start, pages are touched, the library picks its kernels
        function()
    best = math.inf
    for _ in range(3):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(calls):
            function()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return flops * calls / best / 1e9


@torch.inference_mode()
def matmul_rates(config: SU4MLCConfig, calls: int, device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """
    GFLOP/s of `torch.matmul` on `device` in `dtype` at the shapes of the model's largest products, batch 64 of
    150-word texts: the encoder LSTM's input projection for all words at once (words x embedding @ embedding x 4d)
    and an MDC convolution as a product (words x kernel·hidden @ kernel·hidden x hidden). The better of the two is
    the rate of the compute floor.
    """
    hidden, embedding = config.hidden_size, config.embedding_size
    direction = hidden // 2 if config.direction_merge == "concat" else hidden
    words = 64 * 150
    shapes = {
        "encoder_input_projection": (words, embedding, 4 * direction),
        "mdc_convolution": (words, config.mdc_kernel_size * hidden, hidden),
    }
    rates = {}
    for name, (m, k, n) in shapes.items():
        left, right = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        result = torch.empty(m, n, device=device, dtype=dtype)
        rates[f"{name}_{m}x{k}x{n}"] = best_rate(
            lambda: torch.matmul(left, right, out=result), 2 * m * k * n, calls, device
        )
    return rates


@torch.inference_mode()
def convolution_rate(config: SU4MLCConfig, calls: int, device: torch.device, dtype: torch.dtype) -> float:
    """
    GFLOP/s of one MDC convolution (`torch.nn.functional.conv1d`, batch 64 of 150-word texts) on `device` in
    `dtype`. On a CPU PyTorch runs it, and the LSTMs, through oneDNN, whose float32 kernels can use instruction sets
    that the library behind `torch.matmul` (MKL) does not use on every CPU (on AMD EPYC, about 2x the matmul rate):
    a second, stricter reference for what the machine can do. On a GPU cuDNN runs it.
    """
    hidden, kernel = config.hidden_size, config.mdc_kernel_size
    units = torch.randn(64, hidden, 150, device=device, dtype=dtype)
    weight = torch.randn(hidden, hidden, kernel, device=device, dtype=dtype)
    flops = 2 * 64 * (150 - kernel + 1) * kernel * hidden * hidden
    return best_rate(lambda: torch.nn.functional.conv1d(units, weight), flops, calls, device)


class PhaseMonitor:
    """What a `with` block cost the machine: its peak resident set size (MiB), on a CUDA `device` its peak allocated
    GPU memory (MiB), and how much of it this process spent waiting for a core.

    On Linux the kernel's high-water mark is reset on entry (`/proc/self/clear_refs`), so `peak_rss_mib` is this
    phase's own peak; elsewhere it is the process's peak so far (`resource.getrusage`). `cpu_wait_share` is the share
    of the time this process's threads were ready to run that they spent waiting for a core, from the scheduler's
    per-thread counters (`/proc/self/task/*/schedstat`; None elsewhere): near 0 the timings are the code's own; on
    a shared machine, other processes' load shows here. `peak_device_memory_mib` is the peak of the tensors the
    phase held on the GPU (`torch.cuda.max_memory_allocated`, reset on entry; None off CUDA).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> "PhaseMonitor":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.resettable = True
        except OSError:
            self.resettable = False
        self.start_schedule = self.run_and_wait_nanoseconds()
        return self

    def __exit__(self, *exc) -> None:
        end_schedule = self.run_and_wait_nanoseconds()
        self.cpu_wait_share = None
        if self.start_schedule is not None and end_schedule is not None:
            run, wait = (end - start for end, start in zip(end_schedule, self.start_schedule))
            self.cpu_wait_share = wait / (run + wait) if run + wait > 0 else 0.0
        self.peak_rss_mib = None
        if self.resettable:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_mib = int(line.split()[1]) / 1024
        if self.peak_rss_mib is None:
            scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
            self.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
        self.peak_device_memory_mib = None
        if self.device.type == "cuda":
            self.peak_device_memory_mib = torch.cuda.max_memory_allocated(self.device) / 2**20

    @staticmethod
    def run_and_wait_nanoseconds() -> tuple[int, int] | None:
        """Time this process's threads have run, and waited on a run queue, so far."""
        run = wait = 0
        try:
            for task in Path("/proc/self/task").iterdir():
                task_run, task_wait = (int(value) for value in (task / "schedstat").read_text().split()[:2])
                run, wait = run + task_run, wait + task_wait
        except (OSError, ValueError):
            return None
        return run, wait


def cpu_model_name() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model_name() if device.type == "cpu" else str(device)


# --------------------------------------------------------------------------------------------------------------
# Data


@dataclass
class Document:
    """A text and its label names."""

    text: str
    labels: list[str]


def read_documents(path: Path) -> list[Document]:
    """Documents of a JSONL file (`title` + " " + `text`, `labels`) or a TSV file (text, comma-separated labels)."""
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as file:
            rows = [json.loads(line) for line in file if line.strip()]
        return [Document(f"{row.get('title', '')} {row['text']}".strip(), list(row["labels"])) for row in rows]
    with path.open(encoding="utf-8", newline="") as file:
        return [Document(row[0], row[1].split(",")) for row in csv.reader(file, delimiter="\t") if row]


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, pool_batches: int = 50) -> list[list[int]]:
    """
    Indices of texts in batches of similar length: shuffle, cut into pools of `pool_batches` batches, sort each
    pool by length and cut it into batches, then shuffle the batches. Padding is then a few words per text instead
    of up to the longest text of a random batch, while batches stay random between epochs.
    """
    generator = random.Random(seed)
    order = list(range(len(lengths)))
    generator.shuffle(order)
    pool_size = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=lambda index: lengths[index])
        batches.extend(pool[offset : offset + batch_size] for offset in range(0, len(pool), batch_size))
    generator.shuffle(batches)
    return batches


def spread_sample(batches: list[list[int]], lengths: list[int], count: int) -> list[list[int]]:
    """`count` batches evenly spread over the batches sorted by mean length, so that the sample's mean length is
    close to the corpus's while timing only a few batches."""
    if count >= len(batches):
        return batches
    ranked = sorted(batches, key=lambda batch: sum(lengths[index] for index in batch) / len(batch))
    step = len(ranked) / count
    return [ranked[int((position + 0.5) * step)] for position in range(count)]


def collate(
    word_ids: list[list[int]], indices: list[int], device: torch.device, targets: list[list[int]] | None = None
) -> dict:
    """Right-padded tensors of the texts at `indices`, on `device`; labels padded with -100."""
    width = max(len(word_ids[index]) for index in indices)
    input_ids = torch.full((len(indices), width), WORD_PAD_ID, dtype=torch.long)
    for row, index in enumerate(indices):
        input_ids[row, : len(word_ids[index])] = torch.tensor(word_ids[index])
    batch = {"input_ids": input_ids, "attention_mask": input_ids.ne(WORD_PAD_ID).long()}
    if targets is not None:
        target_width = max(len(targets[index]) for index in indices)
        labels = torch.full((len(indices), target_width), -100, dtype=torch.long)
        for row, index in enumerate(indices):
            labels[row, : len(targets[index])] = torch.tensor(targets[index])
        batch["labels"] = labels
    return {name: tensor.to(device) for name, tensor in batch.items()}


# --------------------------------------------------------------------------------------------------------------
# Phases


def best_time(function, repeats: int, device: torch.device) -> tuple[float, object]:
    """The shortest of `repeats` wall-clock times of `function()` (until `device` has run its work), and its last
    result. The machine is shared: a slower run lost time to other processes, not to this code."""
    seconds = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        result = function()
        synchronize(device)
        seconds = min(seconds, time.perf_counter() - start)
    return seconds, result


def measure_training(accelerator, model, optimizer, word_ids, targets, batches, floor_rate, repeats) -> dict:
    """Trains `model` and `optimizer` (prepared by `accelerator`) on `batches` (the first one untimed: it warms up
    allocators and kernels), each step `repeats` times (the time of a batch is its fastest step), and returns
    throughput."""
    model.train()
    device = accelerator.device

    def step(batch):
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        return loss.item()

    step(collate(word_ids, batches[0], device, targets))
    documents = words = flops = 0
    seconds = 0.0
    with PhaseMonitor(device) as monitor:
        for indices in batches[1:]:
            batch = collate(word_ids, indices, device, targets)
            batch_seconds, loss = best_time(lambda: step(batch), repeats, device)
            seconds += batch_seconds
            documents += len(indices)
            words += sum(len(word_ids[index]) for index in indices)
            flops += TRAINING_FLOPS_PER_FORWARD_FLOP * sum(
                count_forward_flops(model.config, len(word_ids[index]), len(targets[index]))["total"]
                for index in indices
            )
    floor_seconds = flops / (floor_rate * 1e9)
    return {
        "batch_size": TRAIN_BATCH_SIZE,
        "batches_timed": len(batches) - 1,
        "documents": documents,
        "mean_words_per_document": words / documents,
        "seconds": seconds,
        "documents_per_second": documents / seconds,
        "words_per_second": words / seconds,
        "gflop_per_document": flops / documents / 1e9,
        "achieved_gflops": flops / seconds / 1e9,
        "floor_documents_per_second": documents / floor_seconds,
        "ratio_to_floor": floor_seconds / seconds,
        "final_loss": loss,
        "peak_rss_mib": monitor.peak_rss_mib,
        "peak_device_memory_mib": monitor.peak_device_memory_mib,
        "cpu_wait_share": monitor.cpu_wait_share,
    }


@torch.inference_mode()
def measure_decoding(accelerator, model, word_ids, num_beams, batch_size, floor_rate, repeats) -> dict:
    """Decodes every text with `generate()` under `accelerator`'s autocast, on its device, in batches of
    `batch_size` texts sorted by length (each batch `repeats` times, keeping the fastest); counts the floor from
    the label tokens each text's returned sequence holds (EOS included), times the beams."""
    model.eval()
    device = accelerator.device

    def decode(batch):
        with accelerator.autocast():
            return model.generate(**batch, num_beams=num_beams)

    order = sorted(range(len(word_ids)), key=lambda index: len(word_ids[index]))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    decode(collate(word_ids, batches[len(batches) // 2], device))  # warm-up
    seconds = 0.0
    flops = steps = 0
    with PhaseMonitor(device) as monitor:
        for indices in batches:
            batch = collate(word_ids, indices, device)
            batch_seconds, sequences = best_time(lambda: decode(batch), repeats, device)
            seconds += batch_seconds
            generated_steps = sequences[:, 1:].ne(model.config.pad_token_id).sum(dim=1).tolist()
            for index, text_steps in zip(indices, generated_steps):
                # Every beam takes the text's steps; the encoder terms depend on the words only, so they count once.
                flops += count_forward_flops(model.config, len(word_ids[index]), num_beams * text_steps)["total"]
            steps += sum(generated_steps)
    documents = len(word_ids)
    floor_seconds = flops / (floor_rate * 1e9)
    return {
        "num_beams": num_beams,
        "batch_size": batch_size,
        "documents": documents,
        "mean_generated_tokens_per_document": steps / documents,
        "seconds": seconds,
        "documents_per_second": documents / seconds,
        "words_per_second": sum(len(ids) for ids in word_ids) / seconds,
        "gflop_per_document": flops / documents / 1e9,
        "achieved_gflops": flops / seconds / 1e9,
        "floor_documents_per_second": documents / floor_seconds,
        "ratio_to_floor": floor_seconds / seconds,
        "peak_rss_mib": monitor.peak_rss_mib,
        "peak_device_memory_mib": monitor.peak_device_memory_mib,
        "cpu_wait_share": monitor.cpu_wait_share,
    }


# --------------------------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu", help="model size (ignored with --model)")
    parser.add_argument(
        "--model",
        type=Path,
        help="a trained model folder (with its tokenizer) to decode with; the training phase trains a fresh model "
        "of its configuration. Without it, decoding uses the model the few timed training steps leave, which has not "
        "learned yet how many labels to emit (see mean_generated_tokens_per_document)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer training batches and test texts")
    parser.add_argument("--train-file", type=Path, default=REUTERS_DIR / "train.jsonl")
    parser.add_argument("--test-file", type=Path, default=REUTERS_DIR / "test.jsonl")
    parser.add_argument("--train-batches", type=int, help="training batches timed (default 40, quick 8)")
    parser.add_argument("--test-documents", type=int, help="test texts decoded (default all, quick 256)")
    parser.add_argument("--decode-batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5], help="1 is greedy decoding")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each timed batch; the fastest counts")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    parser.add_argument(
        "--mixed-precision",
        choices=sorted(COMPUTE_DTYPES),
        default="no",
        help="train and decode under accelerate's autocast in this dtype (fp16 needs a GPU)",
    )
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where there is a GPU")
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/speed-<config>.json)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=args.cpu)
    device, dtype = accelerator.device, COMPUTE_DTYPES[args.mixed_precision]
    if args.mixed_precision == "fp16" and device.type == "cpu":
        # accelerate would run float32 there and the results would still say fp16.
        raise SystemExit("--mixed-precision fp16 needs a GPU; on a CPU use bf16")
    if args.mixed_precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
        # oneDNN has no bfloat16 LSTM there: the first forward pass would fail deep inside torch.lstm.
        raise SystemExit(f"--mixed-precision bf16: this CPU ({cpu_model_name()}) has no bfloat16 support in oneDNN")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_batches = args.train_batches or (8 if args.quick else 40)
    output = args.output or REPO_ROOT / "benchmarks" / "results" / f"speed-{args.config}.json"

    train_documents = read_documents(args.train_file)
    test_documents = read_documents(args.test_file)
    if args.test_documents or args.quick:
        test_documents = random.Random(args.seed).sample(
            test_documents, min(len(test_documents), args.test_documents or 256)
        )
    if args.model is not None:
        tokenizer = SU4MLCTokenizer.from_pretrained(args.model)
        decoding_model = SU4MLCForMultiLabelClassification.from_pretrained(args.model)
        config = decoding_model.config
        label_vocab = LabelVocabulary.from_id2label(config.id2label)
    else:
        tokenizer = SU4MLCTokenizer.train_from_texts(
            [document.text for document in train_documents], vocab_size=WORD_VOCAB_SIZE
        )
        label_vocab = LabelVocabulary.from_label_lists(document.labels for document in train_documents)
        config = SU4MLCConfig(source_vocab_size=len(tokenizer), id2label=label_vocab.id2label, **CONFIGS[args.config])
        decoding_model = None
    model = SU4MLCForMultiLabelClassification(config)
    # What `SU4MLCTrainer` runs: transformers' default optimizer (fused AdamW) with weight decay 0, which is Adam.
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, weight_decay=0.0, fused=device.type in FUSED_ADAMW_DEVICES
    )
    model, optimizer = accelerator.prepare(model, optimizer)

    def encode_words(documents):
        texts = [document.text for document in documents]
        return tokenizer(texts, truncation=True, max_length=MAX_SOURCE_LENGTH)["input_ids"]

    train_ids, test_ids = encode_words(train_documents), encode_words(test_documents)
    # A trained model's labels are its training labels; a label it never saw cannot be a target.
    targets = [
        label_vocab.encode(label for label in document.labels if label in label_vocab) for document in train_documents
    ]

    calls = 3 if args.quick else 10
    rates = matmul_rates(config, calls, device, dtype)
    floor_rate = max(rates.values())
    convolution_gflops = convolution_rate(config, calls, device, dtype)
    train_lengths = [len(ids) for ids in train_ids]
    batches = length_grouped_batches(train_lengths, TRAIN_BATCH_SIZE, args.seed)
    timed = spread_sample(batches, train_lengths, train_batches)
    random.Random(args.seed).shuffle(timed)

    model_fields = ("embedding_size", "hidden_size", "encoder_layers", "decoder_layers", "attention")
    results = {
        "config": args.config,
        "model": {
            **{field: getattr(config, field) for field in model_fields},
            "word_vocabulary": config.source_vocab_size,
            "label_vocabulary": config.vocab_size,
            "parameters": sum(parameter.numel() for parameter in model.parameters()),
            "decoding_model": str(args.model) if args.model is not None else None,
        },
        "command": " ".join(["python", "benchmarks/speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "device": device_name(device),
        "mixed_precision": args.mixed_precision,
        "machine": {
            "cpu": cpu_model_name(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            # How idle OpenMP threads wait (spinning by default): on a shared machine it decides the speed.
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        },
        "repeats": args.repeats,
        "versions": {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "accelerate": accelerate.__version__,
            "python": platform.python_version(),
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "train_file": str(args.train_file),
        "test_file": str(args.test_file),
        "matmul_gflops": rates,
        "floor_gflops": floor_rate,
        "floor_dtype": str(dtype).removeprefix("torch."),
        "convolution_gflops": convolution_gflops,
    }
    print(
        f"{args.config} on {results['device']} ({device.type}), mixed precision {args.mixed_precision}: "
        f"{results['model']['parameters']:,} parameters; floor rate (torch.matmul, {results['floor_dtype']}) "
        f"{floor_rate:.0f} GFLOP/s, convolution {convolution_gflops:.0f} GFLOP/s"
    )

    results["training"] = measure_training(
        accelerator, model, optimizer, train_ids, targets, [batches[0], *timed], floor_rate, args.repeats
    )
    report("training", results["training"])
    results["decoding"] = []
    # Decoding runs the model's own forward under `accelerator.autocast()`: the wrapper that `prepare` puts on it
    # for training would also copy each step's outputs to float32, the batch's word annotations included.
    decoding_model = (decoding_model or accelerator.unwrap_model(model, keep_fp32_wrapper=False)).to(device)
    for num_beams in args.beams:
        for batch_size in args.decode_batch_sizes:
            figures = measure_decoding(
                accelerator, decoding_model, test_ids, num_beams, batch_size, floor_rate, args.repeats
            )
            results["decoding"].append(figures)
            report(f"{'greedy' if num_beams == 1 else f'beam {num_beams}'}, batch {batch_size}", figures)

    # Cost of a document with beam search over its cost with greedy decoding, at each batch size.
    seconds_per_document = {
        (figures["num_beams"], figures["batch_size"]): 1 / figures["documents_per_second"]
        for figures in results["decoding"]
    }
    results["beam_to_greedy_cost"] = {
        f"beam {beams}, batch {size}": seconds_per_document[beams, size] / seconds_per_document[1, size]
        for beams in args.beams
        if beams != 1 and 1 in args.beams
        for size in args.decode_batch_sizes
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    for name, ratio in results["beam_to_greedy_cost"].items():
        print(f"{name}: {ratio:.2f}x the cost of greedy decoding per document")
    print(f"wrote {output}")
    return results


def report(name: str, figures: dict) -> None:
    waiting, device_memory = figures["cpu_wait_share"], figures["peak_device_memory_mib"]
    print(
        f"{name:>18}: {figures['documents_per_second']:7.1f} docs/s {figures['words_per_second']:8.0f} words/s "
        f"{figures['achieved_gflops']:5.1f} GFLOP/s | floor {figures['floor_documents_per_second']:6.1f} docs/s, "
        f"ratio {figures['ratio_to_floor']:.2f} | peak RSS {figures['peak_rss_mib']:.0f} MiB"
        + ("" if device_memory is None else f", GPU {device_memory:.0f} MiB")
        + ("" if waiting is None else f" | waited for a core {waiting:.0%}")
    )


if __name__ == "__main__":
    main()
