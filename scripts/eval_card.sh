#!/bin/bash
# Scores for the model card, after selection (scripts/select_models.py): eval under every
# robustness condition for each model given, written to cache/eval/NAME.json (resumable:
# models already scored are skipped). Usage: scripts/eval_card.sh MODEL [MODEL ...]
# where MODEL is a registry key or a weights/....pt path with its sidecar.
cd "$(dirname "$0")/.."
M=../shared/data/minispoof
CONDITIONS=${CONDITIONS:-clean,telephone,mp3:32k,ogg:24k,noise:10db,gain:-12db}
mkdir -p cache/eval
for m in "$@"; do
  name=$(basename "$m" .pt)
  [ -s cache/eval/$name.json ] && { echo "skip $name"; continue; }
  python -m core evaluate --model "$m" --protocol $M/protocols/minispoof.eval.txt \
    --audio-dir $M/flac --degrade $CONDITIONS --json --no-progress --threads ${THREADS:-2} \
    > cache/eval/$name.json.tmp && mv cache/eval/$name.json.tmp cache/eval/$name.json
  echo "scored $name"
done
# DemoSpoof eval, matched per source (issue 26): cache/eval/NAME.demo.json
D=../shared/data/demospoof
for m in "$@"; do
  name=$(basename "$m" .pt)
  [ -s cache/eval/$name.demo.json ] && { echo "skip $name (demo)"; continue; }
  python -m core evaluate --model "$m" --protocol $D/protocols/demospoof.eval.txt \
    --audio-dir $D/flac --matched --json --no-progress --threads ${THREADS:-2} \
    > cache/eval/$name.demo.json.tmp && mv cache/eval/$name.demo.json.tmp cache/eval/$name.demo.json
  echo "scored $name (demo)"
done
