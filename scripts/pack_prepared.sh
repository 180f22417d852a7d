#!/usr/bin/env bash
# Pack the prepared training data for the GPU machine (issue 14): the train splits and manifests of the five
# sources, xz-compressed. Flat-colour 128² arrays compress well: the five sources' 0.9 GB of .npy travel as 45 MB
# (measured; the device tool carries at most 64 MiB with the working tree). Usage: bash scripts/pack_prepared.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu/prepared.tar.xz}
sources=(openmoji128 dicebear128 fluent128 bigheads128 toonhead128)
paths=()
for s in "${sources[@]}"; do
  if [ ! -f "prepared/$s/manifest.json" ] || [ ! -d "prepared/$s/train" ]; then
    echo "pack_prepared: prepared/$s is missing; make it with: linecolor prepare <source> ../shared/data/<folder> prepared/$s --size 128" >&2
    exit 1
  fi
  paths+=("prepared/$s/manifest.json" "prepared/$s/train")
done
mkdir -p "$(dirname "$out")"
tmp="$out.partial"
tar -cf - "${paths[@]}" | xz -T2 -6 > "$tmp"   # -T2 writes blocks, so unpacking can use several cores too
mv "$tmp" "$out"
ls -l "$out"
