"""benchmarks/paper.py end to end on the GoEmotions sample: a classic and a neural system, their JSON records, the
report section and the Figure 3 numbers (the real runs read Reuters from /work/shared, which tests cannot)."""

from __future__ import annotations

import json

import pytest

from .conftest import DATA_DIR, REPO_ROOT, load_script


paper = load_script(REPO_ROOT / "benchmarks" / "paper.py", "paper_benchmark")


def test_runner_writes_records_report_and_figure3(tmp_path):
    results_path, report_path, figure_path = tmp_path / "paper-quick.json", tmp_path / "B.md", tmp_path / "fig3.png"
    other_set = "## Paper experiments: the `cpu` set\n\nthe cpu set's tables\n"
    report_path.write_text(f"# Benchmarks\n\n{other_set}\n## Speed\n\nsomeone else's section\n", encoding="utf-8")
    argv = [
        "--set", "quick", "--dataset", "goemotions", "--data-dir", str(DATA_DIR / "goemotions"),
        "--only", "BR,S2S", "--seeds", "1", "--threads", "1",
        "--results", str(results_path), "--report", str(report_path), "--figure", str(figure_path),
    ]  # fmt: skip
    # A zero budget stops training after its first step; that cut-short epoch must still be evaluated and kept.
    paper.main([*argv, "--time-budget-minutes", "0"])

    records = {record["system"]: record for record in json.loads(results_path.read_text(encoding="utf-8"))}
    assert set(records) == {"BR", "S2S"}
    for record in records.values():
        assert record["seed"] == 0 and record["command"].startswith("python benchmarks/paper.py --set quick")
        for split in ("validation", "test"):
            assert set(record[split]) >= {"hamming_loss", "micro_precision", "micro_recall", "micro_f1", "macro_f1"}
        # The sample has 28 labels: removing 0, 10 or 20 of the most frequent ones leaves some.
        assert list(record["figure3"]) == ["0", "10", "20"]
        assert record["figure3"]["0"] == round(record["test"]["micro_f1"], 4)
    assert records["BR"]["config"] == {"baseline": "br"} and records["BR"]["params"] is None
    neural = records["S2S"]
    assert neural["config"]["attention"] == "none" and neural["params"] > 0
    assert neural["stopped_by_time_budget"] and 0 < neural["epochs_done"] < 1 and neural["best_epoch"] is not None

    report = report_path.read_text(encoding="utf-8")
    assert "## Speed\n\nsomeone else's section" in report and other_set in report  # another set's section stays
    assert report.count(paper.report_section_title("quick")) == 1
    assert "| BR | 1 |" in report and "| S2S | 1 |" in report and "| SU4MLC | not run |" in report
    assert "### Figure 3" in report and figure_path.exists()
    # Systems beyond the paper's tables that were not run get no table rows or orderings, only a "Not run" entry.
    assert "### Beyond the paper" not in report and "(2018 code) > S2S+Attn" not in report
    assert "SU4MLC (2018 code)," in report.split("### Not run", 1)[1]

    # A second run replaces the records of the systems it runs and this script's section, except its notes.
    report_path.write_text(report + "\n### Notes\n\nhand-written\n", encoding="utf-8")  # the section ends the file
    paper.main([*argv, "--only", "BR"])
    assert sorted(record["system"] for record in json.loads(results_path.read_text(encoding="utf-8"))) == ["BR", "S2S"]
    report = report_path.read_text(encoding="utf-8")
    assert report.count(paper.report_section_title("quick")) == 1 and "someone else's section" in report
    assert report.count("### Notes\n\nhand-written") == 1


def test_scores_align_gold_rows_with_length_grouped_predictions(tmp_path):
    """`Trainer.predict` reads a split in length-grouped order: the gold rows must follow that order, not the
    split's."""
    raw = paper.DATA_LOADERS["goemotions"][0](DATA_DIR / "goemotions")
    config = paper.system_config(paper.EXPERIMENT_SETS["quick"]["config"], paper.SYSTEMS["S2S"])
    data = paper.prepare_data(raw, config)
    model = paper.build_model("su4mlc", config, data)
    validation = data.splits["validation"]
    args = paper.SU4MLCTrainingArguments(
        output_dir=str(tmp_path / "unused"), report_to="none", per_device_eval_batch_size=8, use_cpu=True
    )
    trainer = paper.SU4MLCTrainer(
        model=model, args=args, eval_dataset=validation, data_collator=paper.SU4MLCDataCollator()
    )
    order = [index for batch in trainer.get_eval_dataloader(validation).batch_sampler for index in batch]
    assert order != sorted(order)  # the case that matters: the order differs from the split's

    gold, predicted = paper.gold_and_predicted_multi_hot(trainer, "su4mlc", validation, data.label_vocab)
    assert (gold == data.gold["validation"][order]).all() and predicted.shape == gold.shape


def test_2018_code_systems_build_the_switched_model_and_tuning_starts_from_the_first_recipe():
    raw = paper.DATA_LOADERS["goemotions"][0](DATA_DIR / "goemotions")
    quick = paper.EXPERIMENT_SETS["quick"]["config"]
    data = paper.prepare_data(raw, quick)
    for name, attention in (("SU4MLC (2018 code)", "hybrid"), ("SU4MLC-mdc (2018 code)", "mdc")):
        # Through the JSON record and back, as a rerun of the report sees it: the switches become lists.
        config = json.loads(json.dumps(paper.system_config(quick, paper.SYSTEMS[name])))
        model_config = paper.build_model("su4mlc", config, data).config
        assert model_config.attention == attention
        assert (model_config.direction_merge, model_config.mdc_padding, model_config.mdc_activation) == (
            "sum", 1, "selu"
        )  # fmt: skip
        assert (model_config.mdc_dropout, model_config.hybrid_output) == (0.05, "residual")
    paper_model = paper.build_model("su4mlc", paper.system_config(quick, paper.SYSTEMS["SU4MLC"]), data)
    assert paper_model.config.mdc_padding == 0 and paper_model.config.direction_merge == "concat"

    # Every tuning variant changes the first CPU recipe, not the tuned one it led to.
    assert paper.TUNING_BASE["learning_rate"] == 2e-3 and paper.TUNING_BASE["num_train_epochs"] == 4
    assert paper.TUNING_BASE["dropout"] == 0.2 and paper.TUNING_BASE["num_beams"] == 1
    cpu = paper.EXPERIMENT_SETS["cpu"]["config"]
    assert {key: cpu[key] for key in ("learning_rate", "num_train_epochs", "dropout", "num_beams")} == {
        "learning_rate": 3e-3, "num_train_epochs": 10, "dropout": 0.4, "num_beams": 5
    }  # fmt: skip


def test_gpu_runs_need_a_gpu_and_say_so(tmp_path, monkeypatch):
    """`--gpu` must not fall back to a CPU run that its records would call a GPU run."""
    monkeypatch.setattr(paper.torch.cuda, "is_available", lambda: False)
    argv = [
        "--set", "quick", "--dataset", "goemotions", "--data-dir", str(DATA_DIR / "goemotions"), "--only", "S2S",
        "--gpu", "--results", str(tmp_path / "r.json"), "--report", str(tmp_path / "B.md"),
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="--gpu: torch sees no CUDA GPU here"):
        paper.main(argv)
    assert not (tmp_path / "r.json").exists()


def test_orderings_say_when_a_difference_is_within_the_seed_spread():
    def runs(*scores):
        return [{"test": {"micro_f1": score}} for score in scores]

    grouped = {"SU4MLC": runs(0.85, 0.87), "S2S+Attn": runs(0.855), "S2S": runs(0.70, 0.71), "LP": runs(0.80)}
    lines = paper.ordering_lines(grouped)
    assert "| SU4MLC > S2S+Attn | 0.8600 vs 0.8550 | yes (within one std over seeds) |" in lines
    assert "| SU4MLC > LP | 0.8600 vs 0.8000 | yes |" in lines
    assert "| word > none | 0.8550 vs 0.7050 | yes |" in lines
    assert "| SU4MLC > CC | not run | – |" in lines
