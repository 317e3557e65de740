#!/usr/bin/env bash
# The main job: sets up .venv if needed, then trains SU4MLC on GoEmotions (shipped in data/goemotions, CC BY 4.0),
# evaluates it on the validation split every epoch, predicts the test split, prints the metrics and a few
# predictions, and writes the model, tokenizer, generation config, model card and predictions to
# outputs/goemotions. Offline. Extra arguments override the config, e.g. `bash scripts/main.sh --num_train_epochs 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python examples/run_mlc.py examples/configs/goemotions.json "$@"
