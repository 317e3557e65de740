"""`push_to_hub` end to end, without a network: the Hub is a local folder, and the pushed repository loads where
`su4mlc_hf` cannot be imported, through `trust_remote_code=True`."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard, constants
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.hf_api import RepoUrl

from su4mlc_hf import build_model_card, push_model_card

from .conftest import DATA_DIR, run_without_package, save_tiny_model_and_tokenizer
from .test_pipeline import TEXTS

REPO_ID = "user/su4mlc-test"

# Run by `run_without_package`: load the pushed repository with the Auto classes and print what it generates.
LOAD_WITHOUT_PACKAGE = r"""
import json

from transformers import AutoModel, AutoTokenizer

folder, texts = sys.argv[1], json.loads(sys.argv[2])
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
batch = tokenizer(texts, padding=True, return_tensors="pt")
print(json.dumps({
    "model_module": type(model).__module__,
    "input_ids": batch["input_ids"].tolist(),
    "sequences": model.generate(**batch).tolist(),
    "predictions": model.predict(texts, tokenizer, return_scores=True),
    "su4mlc_hf_imported": any(name.split(".")[0] == "su4mlc_hf" for name in sys.modules),
}))
"""


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """Stands in for the Hub: `HfApi.create_repo` / `HfApi.create_commit` (which `upload_file`, `upload_folder` and
    transformers' `push_to_hub` go through) write into `tmp_path / "hub" / repo_id`, model cards are read back from
    there, and a README's metadata is validated by parsing it (the Hub's `validate-yaml` service).

    Returns the folder of the Hub and the list of commits, as `(commit_message, paths_in_repo)`.
    """
    hub = tmp_path / "hub"
    commits = []

    def create_repo(self, repo_id, *, repo_type=None, exist_ok=False, **kwargs):
        assert repo_type in (None, "model")
        (hub / repo_id).mkdir(parents=True, exist_ok=exist_ok)
        return RepoUrl(f"{constants.ENDPOINT}/{repo_id}")

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, revision=None, **kwargs):
        assert repo_type in (None, "model") and revision is None
        repo = hub / repo_id
        assert repo.is_dir(), f"commit to {repo_id}, a repository that was not created"
        paths = []
        for operation in operations:
            assert isinstance(operation, CommitOperationAdd), f"unexpected commit operation {operation!r}"
            target = (repo / operation.path_in_repo).resolve()
            assert target.is_relative_to(repo.resolve())
            target.parent.mkdir(parents=True, exist_ok=True)
            with operation.as_file() as source:
                target.write_bytes(source.read())
            paths.append(operation.path_in_repo)
        commits.append((commit_message, sorted(paths)))
        oid = f"{len(commits):040x}"
        return CommitInfo(
            commit_url=f"{constants.ENDPOINT}/{repo_id}/commit/{oid}",
            commit_message=commit_message,
            commit_description="",
            oid=oid,
        )

    def download_card(repo_id, filename, **kwargs):
        # transformers' `push_to_hub` reads the repository's card (`ModelCard.load(repo_id)`) to keep and tag it.
        path = hub / repo_id / filename
        if not path.is_file():
            raise LocalEntryNotFoundError(f"{filename} is not in the local hub's {repo_id}")
        return str(path)

    def validate_yaml(self, content, *, repo_type=None, token=None):
        # The Hub checks a README's metadata before `upload_folder` uploads it; here it must at least parse.
        ModelCard(content)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "_validate_yaml", validate_yaml)
    # With `hf_xet` installed, `upload_folder` streams through an upload pipeline that talks to the Hub before
    # committing; without it, it commits through `create_commit`, the call this fake Hub answers.
    monkeypatch.setattr("huggingface_hub.hf_api.is_xet_available", lambda: False)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr("huggingface_hub.repocard.hf_hub_download", download_card)
    return hub, commits


def test_pushed_repository_loads_and_generates_without_the_package(tmp_path, local_hub):
    hub, commits = local_hub
    model, tokenizer = save_tiny_model_and_tokenizer(tmp_path / "trained", seed=2)
    card = build_model_card(model, dataset_name="GoEmotions", eval_results={"test_micro_f1": 0.25}, repo_id=REPO_ID)

    # The order `push_model_card` asks for: each `push_to_hub` uploads a README.md too.
    model.push_to_hub(REPO_ID)
    tokenizer.push_to_hub(REPO_ID)
    push_model_card(card, REPO_ID)

    repo = hub / REPO_ID
    model_files, tokenizer_files, card_files = (paths for _, paths in commits)
    assert "model.safetensors" in model_files and "tokenizer.json" in tokenizer_files and card_files == ["README.md"]
    files = {path.name for path in repo.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "configuration_su4mlc.py",
        "modeling_su4mlc.py",
        "label_vocab.py",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    } <= files
    # Weights as safetensors only: no pickle a loader would have to unpickle.
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle"))]
    config = json.loads((repo / "config.json").read_text(encoding="utf-8"))
    assert config["auto_map"]["AutoModel"] == "modeling_su4mlc.SU4MLCForMultiLabelClassification"
    pushed_card = ModelCard.load(repo / "README.md")
    assert pushed_card.text == card.text and "su4mlc" in pushed_card.data.tags
    assert [result.metric_value for result in pushed_card.data.eval_results] == [0.25]

    completed = run_without_package(LOAD_WITHOUT_PACKAGE, str(repo), json.dumps(TEXTS), folder=tmp_path)
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])

    assert loaded["model_module"].startswith("transformers_modules.")
    assert not loaded["su4mlc_hf_imported"]
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert loaded["input_ids"] == batch["input_ids"].tolist()
    assert loaded["sequences"] == model.generate(**batch).tolist()
    expected = model.predict(TEXTS, tokenizer, return_scores=True)
    assert [[label for label, _ in scored] for scored in loaded["predictions"]] == [
        [label for label, _ in scored] for scored in expected
    ]
    assert [score for scored in loaded["predictions"] for _, score in scored] == pytest.approx(
        [score for scored in expected for _, score in scored], abs=1e-6
    )


def test_run_mlc_push_to_hub_uploads_the_su4mlc_card_and_code(tmp_path, local_hub):
    """The Trainer route: `run_mlc.py --push_to_hub` sends weights, tokenizer, generation config, code files and
    the SU4MLC card (not the Trainer's generic draft), and the repository loads without the package."""
    from .test_run_mlc import TINY_MODEL_ARGS, run_mlc

    hub, _ = local_hub
    run_mlc.main(
        ["--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions",
         "--output_dir", str(tmp_path / "out"), "--do_train", "--do_predict", "--max_steps", "3",
         "--max_predict_samples", "20", "--eval_strategy", "no", "--save_strategy", "no",
         "--load_best_model_at_end", "false", "--push_to_hub", "--hub_model_id", REPO_ID, *TINY_MODEL_ARGS]
    )  # fmt: skip
    repo = hub / REPO_ID
    files = {path.name for path in repo.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md",
            "configuration_su4mlc.py", "modeling_su4mlc.py", "label_vocab.py"} <= files  # fmt: skip
    card = ModelCard.load(repo / "README.md")
    assert "su4mlc" in card.data.tags and "Lin et al." in card.text and REPO_ID in card.text
    assert {result.metric_type for result in card.data.eval_results} >= {"micro_f1", "hamming_loss"}

    completed = run_without_package(LOAD_WITHOUT_PACKAGE, str(repo), json.dumps(TEXTS), folder=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1])["model_module"].startswith("transformers_modules.")
