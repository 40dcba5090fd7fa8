#!/bin/bash
# Resumable training and selection queue (issue 10). Rerun it to continue where it stopped:
# finished runs are skipped (.done markers), an interrupted run resumes from its checkpoint.
#
# Selection rule, fixed before any candidate was scored on eval: every run keeps its epoch
# by the mean dev EER over clean dev and dev degraded by $DEV_CONDITIONS (train
# --dev-degrade), and a candidate replaces a shipped model only if its mean whole-file dev
# EER over the same four conditions (`evaluate --degrade` on dev) is lower. Eval is scored
# afterwards, for the model card only.
cd "$(dirname "$0")/.."
M=../shared/data/minispoof
V=cache/vocoded
DEV_CONDITIONS=noise:15db,mp3:32k,telephone
OUT=weights/candidates
SEL=cache/select
mkdir -p $OUT $SEL
[ -f $V/vocoded.train.txt ] || python -m core.vocode --protocol $M/protocols/minispoof.train.txt \
  --audio-dir $M/flac --system V01 --system V02 --out $V
run() {  # name arch seed epochs [extra train args]
  local name=$1 arch=$2 seed=$3 epochs=$4; shift 4
  local out=$OUT/$name.pt
  if [ -f $out.done ]; then echo "skip $out"; return; fi
  python -m core train --arch $arch --protocol $M/protocols/minispoof.train.txt \
    --audio-dir $M/flac --dev-protocol $M/protocols/minispoof.dev.txt \
    --extra $V/vocoded.train.txt $V/flac --augment --dev-degrade $DEV_CONDITIONS \
    --out $out --epochs $epochs --seed $seed --resume --threads ${THREADS:-2} \
    --no-progress "$@" && touch $out.done
}
dev_score() {  # model (registry key or weights path) -> $SEL/NAME.dev.json
  local name; name=$(basename "$1" .pt)
  [ -s $SEL/$name.dev.json ] && return
  python -m core evaluate --model "$1" --protocol $M/protocols/minispoof.dev.txt \
    --audio-dir $M/flac --degrade clean,$DEV_CONDITIONS --json --no-progress \
    --threads ${THREADS:-2} > $SEL/$name.dev.json.tmp && mv $SEL/$name.dev.json.tmp $SEL/$name.dev.json
}
dev_score tssd1d
dev_score tssd2d
# fine-tune the shipped models with augmentation and the vocoded spoofs
run tssd1d-ft-s0 tssd1d 0 8 --init weights/tssd1d.pt --lr 5e-4 --crop 64000
dev_score $OUT/tssd1d-ft-s0.pt
run tssd2d-ft-s0 tssd2d 0 6 --init weights/tssd2d.pt --lr 5e-4 --crop 51200
dev_score $OUT/tssd2d-ft-s0.pt
# from scratch, a second seed family for the cheap model
run tssd1d-s1 tssd1d 1 14 --crop 64000
dev_score $OUT/tssd1d-s1.pt
# AASIST-L fine-tuned from the published checkpoint (2-s crops: ~10 min per epoch on 2 CPU cores)
run aasist-l-ft-s0 aasist-l 0 3 --init ../shared/weights/aasist-official/AASIST-L.pth --crop 32000
dev_score $OUT/aasist-l-ft-s0.pt
