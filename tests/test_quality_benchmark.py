"""benchmarks/quality.py: the baselines' decision rule, their tuning on validation, and the report."""

from __future__ import annotations

import numpy as np

from su4mlc_hf.data import load_goemotions
from su4mlc_hf.label_vocab import LabelVocabulary

from .conftest import DATA_DIR, REPO_ROOT, load_script

quality = load_script(REPO_ROOT / "benchmarks" / "quality.py", "quality_benchmark")


def test_margin_decision_with_and_without_the_top_label():
    values = np.array([[0.5, -0.2, -1.0], [-0.4, -0.3, -2.0]])
    assert quality.margin_decision(values, 0.0, top_when_empty=False).tolist() == [[1, 0, 0], [0, 0, 0]]
    assert quality.margin_decision(values, 0.0, top_when_empty=True).tolist() == [[1, 0, 0], [0, 1, 0]]
    assert quality.margin_decision(values, -0.35, top_when_empty=False).tolist() == [[1, 1, 0], [0, 1, 0]]


def test_tuned_baselines_choose_on_validation_and_report(tmp_path, monkeypatch):
    raw = load_goemotions(DATA_DIR / "goemotions")
    monkeypatch.setattr(quality, "BASELINES", (("br", "linear_svc"), ("lp", "linear_svc")))
    monkeypatch.setattr(quality, "C_GRID", {"linear_svc": (1.0,)})
    records = quality.run_baselines(raw, LabelVocabulary.from_label_lists(raw["train"]["labels"]))
    br, lp = records
    assert set(br["chosen"]) == {"C", "margin", "top_label_when_empty"} and br["chosen"]["margin"] in quality.MARGINS
    assert lp["chosen"] == {"C": 1.0}
    assert all(0.0 <= record["test"]["micro_f1"] <= 1.0 for record in records)
    neural = {"system": "SU4MLC", "seed": 0, "test": dict(br["test"]), "train_minutes": 1.0, "threads": 1,
              "width": 256, "decision_threshold": 0.3, "label_score_head_weight": 0.5, "label_score_ngram_weight": 0.75, "epochs": 4.0}  # fmt: skip
    run = {"command": "python benchmarks/quality.py --dataset goemotions", "machine": "m", "date": "d",
           "records": records + [neural, {**neural, "seed": 1}]}  # fmt: skip
    report = quality.build_report({"goemotions": run})
    assert report.startswith(quality.REPORT_TITLE)
    assert "| SU4MLC, `run_mlc.py` defaults (2 seeds) |" in report and "| BR linear_svc |" in report
    assert "seed 1: width 256, 4 epochs, threshold 0.3, head weight 0.5, n-gram weight 0.75" in report
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Other\n\nkept\n", encoding="utf-8")
    monkeypatch.setattr(quality, "REPORT_PATH", path)
    quality.write_report_section(report)
    quality.write_report_section(report)  # replaced, not appended twice
    text = path.read_text(encoding="utf-8")
    assert text.count(quality.REPORT_TITLE) == 1 and "## Other\n\nkept" in text
