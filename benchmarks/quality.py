#!/usr/bin/env python
"""Quality of the defaults: SU4MLC trained by `run_mlc.py` given only the data, an output folder and a seed, against
tuned classic baselines, in one run per data set.

    python benchmarks/quality.py --dataset goemotions --seeds 3
    python benchmarks/quality.py --dataset reuters --seeds 3
    python benchmarks/quality.py --dataset aapd --seeds 3
    python benchmarks/quality.py --report-only      # rewrites the BENCHMARKS.md section from the records

Data: GoEmotions from `data/goemotions` (its own splits); Reuters-21578 ModApte from
`../shared/data/reuters21578/modapte` (the 500 ids of `valid_ids.txt` are the validation split); AAPD from
`../shared/data/aapd`, of which only the validation and test releases exist here: the first 800 validation
abstracts train, the last 200 validate, the 1,000 test abstracts test.

Baselines: binary relevance and classifier chains with logistic regression and LinearSVC, and label powerset with
LinearSVC, on TF-IDF word 1-2-grams plus character 2-5-grams (`char_wb`); C from a small grid, then one decision
margin for all labels and "the top-scoring label when none passes" on or off, all chosen on validation micro-F1.

SU4MLC: `examples/run_mlc.py` in a subprocess with the data arguments, `--output_dir`, `--seed` and the do-flags
only, so that every other setting is the default recipe's. Each system's test scores come after its choices were
made on validation. Records go to `benchmarks/results/quality-<dataset>.json`; the report to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import ClassifierChain

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from su4mlc_hf.baselines.classic import LabelPowerset, build_classifier  # noqa: E402
from su4mlc_hf.data import load_goemotions, load_multilabel_dataset, load_reuters_modapte  # noqa: E402
from su4mlc_hf.label_vocab import LabelVocabulary  # noqa: E402
from su4mlc_hf.metrics import multi_hot, multilabel_scores  # noqa: E402

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
REPORT_PATH = REPO_ROOT / "BENCHMARKS.md"
REPORT_TITLE = "## Quality of the defaults: `run_mlc.py` against tuned linear baselines"
DATASETS = ("goemotions", "reuters", "aapd")
METRICS = ("micro_f1", "macro_f1", "hamming_loss", "example_f1")

# The baselines' grids: C of each classifier, and the decision margin added to the decision function's 0.
C_GRID = {"linear_svc": (0.3, 1.0), "logreg": (4.0, 16.0)}
MARGINS = tuple(round(value, 2) for value in np.arange(-1.5, 0.51, 0.1))
BASELINES = (("br", "linear_svc"), ("br", "logreg"), ("cc", "linear_svc"), ("cc", "logreg"), ("lp", "linear_svc"))


# --------------------------------------------------------------------------------------------------------------
# Data


def dataset_arguments(dataset: str, workdir: Path) -> list[str]:
    """`run_mlc.py`'s data arguments for a data set (AAPD's files are written into `workdir`)."""
    if dataset == "goemotions":
        return ["--dataset_dir", str(REPO_ROOT / "data" / "goemotions"), "--dataset_format", "goemotions"]
    if dataset == "reuters":
        folder = SHARED_DATA / "reuters21578" / "modapte"
        return [
            "--dataset_dir", str(folder), "--dataset_format", "reuters_modapte",
            "--valid_ids_file", str(folder / "valid_ids.txt"),
        ]
    files = write_aapd_splits(workdir)
    return ["--train_file", files["train"], "--validation_file", files["validation"], "--test_file", files["test"]]


def write_aapd_splits(workdir: Path) -> dict[str, str]:
    """AAPD as JSON Lines: validation abstracts 1-800 train, 801-1000 validate; the test release tests."""
    folder = SHARED_DATA / "aapd"

    def examples(stem: str) -> list[dict]:
        texts = (folder / f"text_{stem}").read_text(encoding="utf-8").splitlines()
        labels = (folder / f"label_{stem}").read_text(encoding="utf-8").splitlines()
        return [{"text": text, "labels": label_line.split()} for text, label_line in zip(texts, labels)]

    validation_release = examples("val")
    splits = {"train": validation_release[:800], "validation": validation_release[800:], "test": examples("test")}
    paths = {}
    for split, rows in splits.items():
        path = workdir / f"aapd-{split}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        paths[split] = str(path)
    return paths


def load_splits(dataset: str, workdir: Path):
    if dataset == "goemotions":
        return load_goemotions(REPO_ROOT / "data" / "goemotions")
    if dataset == "reuters":
        folder = SHARED_DATA / "reuters21578" / "modapte"
        return load_reuters_modapte(folder, valid_ids_file=folder / "valid_ids.txt")
    paths = write_aapd_splits(workdir)
    return load_multilabel_dataset(paths)


# --------------------------------------------------------------------------------------------------------------
# Tuned linear baselines


def tfidf_features(train_texts, other_texts: dict[str, Sequence[str]]):
    """Word 1-2-grams and character 2-5-grams, each TF-IDF with sublinear tf, min_df 2, at most 300k features."""
    vectorizers = [
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=300_000),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, max_features=300_000),
    ]
    train = scipy.sparse.hstack([vectorizer.fit_transform(train_texts) for vectorizer in vectorizers]).tocsr()
    others = {
        split: scipy.sparse.hstack([vectorizer.transform(texts) for vectorizer in vectorizers]).tocsr()
        for split, texts in other_texts.items()
    }
    return train, others


def margin_decision(decision_values: np.ndarray, margin: float, top_when_empty: bool) -> np.ndarray:
    """Labels whose decision value exceeds `margin`; optionally the top-scoring label of a text with none."""
    chosen = decision_values > margin
    if top_when_empty:
        empty = ~chosen.any(axis=1)
        chosen[np.flatnonzero(empty), decision_values[empty].argmax(axis=1)] = True
    return chosen.astype(np.int64)


def fit_baseline(name: str, classifier: str, c: float, features, label_matrix: np.ndarray):
    base = build_classifier(classifier, C=c, **({"max_iter": 2000} if classifier == "logreg" else {}))
    if name == "br":
        estimator = OneVsRestClassifier(base, n_jobs=None)
    elif name == "cc":
        estimator = ClassifierChain(base, order=None, random_state=0)
    else:
        estimator = LabelPowerset(OneVsRestClassifier(base))
    return estimator.fit(features, label_matrix)


def run_baselines(raw, label_vocab: LabelVocabulary) -> list[dict]:
    """Every baseline of `BASELINES`, each with its C, margin and empty-set rule chosen on validation micro-F1."""
    gold = {
        split: multi_hot((label_vocab.indices(labels, strict=False) for labels in raw[split]["labels"]), len(label_vocab))
        for split in ("train", "validation", "test")
    }
    start = time.perf_counter()
    train_features, features = tfidf_features(
        raw["train"]["text"], {split: raw[split]["text"] for split in ("validation", "test")}
    )
    feature_seconds = time.perf_counter() - start
    # Labels that never occur in training get no classifier (a binary classifier needs two classes).
    seen = gold["train"].max(axis=0) > 0
    records = []
    for name, classifier in BASELINES:
        best = None
        start = time.perf_counter()
        for c in C_GRID[classifier]:
            estimator = fit_baseline(name, classifier, c, train_features, gold["train"][:, seen])
            # Each split's outputs once per fitted model: LP's label sets, or BR's and CC's per-label decision values
            # that every margin rule reads.
            if name == "lp":
                outputs = {split: estimator.predict(features[split]) for split in ("validation", "test")}
                rules = [({"C": c}, lambda label_sets: label_sets)]
            else:
                outputs = {
                    split: np.asarray(estimator.decision_function(features[split])) for split in ("validation", "test")
                }
                rules = [
                    (
                        {"C": c, "margin": margin, "top_label_when_empty": top},
                        lambda values, m=margin, t=top: margin_decision(values, m, t),
                    )
                    for margin in MARGINS
                    for top in (False, True)
                ]
            for chosen, rule in rules:
                predicted = np.zeros_like(gold["validation"])
                predicted[:, seen] = rule(outputs["validation"])
                score = multilabel_scores(gold["validation"], predicted)["micro_f1"]
                if best is None or score > best[0]:
                    best = (score, chosen, rule, outputs)
        score, chosen, rule, outputs = best
        predicted = np.zeros_like(gold["test"])
        predicted[:, seen] = rule(outputs["test"])
        records.append({
            "system": f"{name.upper()} {classifier}",
            "chosen": chosen,
            "validation_micro_f1": round(score, 4),
            "test": {metric: round(value, 4) for metric, value in multilabel_scores(gold["test"], predicted).items()},
            "train_minutes": round((time.perf_counter() - start + feature_seconds) / 60, 2),
            "threads": 1,
        })
        print(json.dumps(records[-1]), flush=True)
    return records


# --------------------------------------------------------------------------------------------------------------
# SU4MLC through run_mlc.py


def run_su4mlc(dataset: str, seed: int, workdir: Path, extra: Sequence[str] = ()) -> dict:
    """Trains, evaluates and predicts with `run_mlc.py` given only data, an output folder and a seed."""
    output_dir = workdir / f"su4mlc-{dataset}-seed{seed}"
    command = [
        sys.executable, str(REPO_ROOT / "examples" / "run_mlc.py"),
        *dataset_arguments(dataset, workdir),
        "--output_dir", str(output_dir), "--seed", str(seed), "--do_train", "--do_eval", "--do_predict",
        *extra,
    ]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall_seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"run_mlc.py failed ({' '.join(command)}):\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}")
    results = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    config = json.loads((output_dir / "config.json").read_text(encoding="utf-8"))
    record = {
        "system": "SU4MLC (run_mlc.py defaults)",
        "seed": seed,
        "command": " ".join(command[1:]).replace(str(REPO_ROOT) + "/", ""),
        "test": {metric: round(results[f"predict_{metric}"], 4) for metric in METRICS},
        "validation": {metric: round(results[f"eval_{metric}"], 4) for metric in METRICS if f"eval_{metric}" in results},
        # The n-gram classifier is fitted before the network's training: both are training.
        "train_minutes": round((results["train_runtime"] + results.get("ngram_fit_runtime", 0.0)) / 60, 2),
        "wall_minutes": round(wall_seconds / 60, 2),
        "threads": run_threads(output_dir),
        "width": config["hidden_size"],
        "decision_threshold": config.get("decision_threshold"),
        "label_score_head_weight": config.get("label_score_head_weight"),
        "label_score_ngram_weight": config.get("label_score_ngram_weight"),
        "epochs": json.loads((output_dir / "training_args.json").read_text(encoding="utf-8"))["num_train_epochs"],
    }
    print(json.dumps(record), flush=True)
    return record


def run_threads(output_dir: Path) -> int:
    """The CPU threads the run trained with, from the summary line of its `run_mlc.log`."""
    log = (output_dir / "run_mlc.log").read_text(encoding="utf-8")
    return int(re.findall(r"with (\d+) CPU thread", log)[-1])


# --------------------------------------------------------------------------------------------------------------
# Records and report


def results_path(dataset: str) -> Path:
    return RESULTS_DIR / f"quality-{dataset}.json"


def mean_std(values: Sequence[float]) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" if len(values) > 1 else f"{values.mean():.4f}"


def build_report(records_by_dataset: dict[str, dict]) -> str:
    lines = [
        REPORT_TITLE,
        "",
        "Written by `python benchmarks/quality.py` (each data set's command below; `--report-only` rewrites this "
        "section from `benchmarks/results/quality-<dataset>.json`). Test-split scores; every choice (the baselines' "
        "C, margin and empty-set rule; SU4MLC's checkpoint and decision rule) was made on the validation split. "
        "SU4MLC: mean ± std over seeds.",
        "",
    ]
    for dataset, run in records_by_dataset.items():
        lines += [f"### {dataset}", "", f"`{run['command']}` — {run['machine']}, {run['date']}", ""]
        lines += ["| system | micro-F1 | macro-F1 | hamming loss | example-F1 | train minutes | threads | chosen on validation |",
                  "|---|---|---|---|---|---|---|---|"]
        neural = [record for record in run["records"] if "seed" in record]
        if neural:
            cells = [mean_std([record["test"][metric] for record in neural]) for metric in METRICS]
            minutes = ", ".join(f"{record['train_minutes']:.1f}" for record in neural)
            choice = "; ".join(
                f"seed {record['seed']}: width {record['width']}, {record['epochs']:g} epochs, threshold "
                f"{record['decision_threshold']}, head weight {record.get('label_score_head_weight')}"
                + ("" if record.get("label_score_ngram_weight") is None else f", n-gram weight {record['label_score_ngram_weight']}")
                for record in neural
            )
            lines.append(f"| SU4MLC, `run_mlc.py` defaults ({len(neural)} seeds) | {' | '.join(cells)} | {minutes} | "
                         f"{neural[0]['threads']} | {choice} |")
        for record in run["records"]:
            if "seed" in record:
                continue
            cells = [f"{record['test'][metric]:.4f}" for metric in METRICS]
            lines.append(f"| {record['system']} | {' | '.join(cells)} | {record['train_minutes']} | "
                         f"{record['threads']} | {record['chosen']} |")
        lines.append("")
    return "\n".join(lines)


def write_report_section(section: str) -> None:
    text = REPORT_PATH.read_text(encoding="utf-8")
    start = text.find(REPORT_TITLE)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        end = text.find("\n## ", start + len(REPORT_TITLE))
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "\n")
    REPORT_PATH.write_text(text, encoding="utf-8")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS)
    parser.add_argument("--seeds", type=int, default=3, help="SU4MLC seeds (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--skip-baselines", action="store_true", help="keep the baselines of the existing records")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.report_only and args.dataset is None:
        parser.error("--dataset is required unless --report-only")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.report_only:
        path = results_path(args.dataset)
        previous = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"records": []}
        with tempfile.TemporaryDirectory() as workdir:
            workdir = Path(workdir)
            records = [record for record in previous["records"] if "seed" not in record] if args.skip_baselines else []
            if not args.skip_baselines:
                raw = load_splits(args.dataset, workdir)
                records += run_baselines(raw, LabelVocabulary.from_label_lists(raw["train"]["labels"]))
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                records.append(run_su4mlc(args.dataset, seed, workdir))
        run = {
            "command": "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__} (threads: per record)",
            "date": time.strftime("%Y-%m-%d"),
            "records": records,
        }
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
    records_by_dataset = {
        dataset: json.loads(results_path(dataset).read_text(encoding="utf-8"))
        for dataset in DATASETS
        if results_path(dataset).exists()
    }
    write_report_section(build_report(records_by_dataset))


if __name__ == "__main__":
    main()
