#!/bin/bash
# Resumable training queue (issue 10): rerun this script to continue where it stopped.
cd "$(dirname "$0")/.."
M=../shared/data/minispoof
V=cache/vocoded
mkdir -p weights/candidates
run() {  # arch seed epochs [extra args]
  local arch=$1 seed=$2 epochs=$3; shift 3
  local out=weights/candidates/$arch-aug-s$seed.pt
  if [ -f $out.done ]; then echo "skip $out"; return; fi
  python -m core train --arch $arch --protocol $M/protocols/minispoof.train.txt \
    --audio-dir $M/flac --dev-protocol $M/protocols/minispoof.dev.txt \
    --extra $V/vocoded.train.txt $V/flac --augment --out $out --epochs $epochs \
    --seed $seed --resume --threads ${THREADS:-1} --no-progress "$@" && touch $out.done
}
run tssd1d 0 14
run tssd1d 1 14
run aasist-l 0 6 --init ../shared/weights/aasist-official/AASIST-L.pth --crop 32000
run tssd2d 0 5 --crop 51200
