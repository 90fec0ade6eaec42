#!/usr/bin/env bash
# Start-up time of light commands, before and after: 7 alternating runs of each command with the code of
# commit BEFORE (checked out in a scratch worktree, first on PYTHONPATH) and of this tree; best and median.
#   bash benchmarks/startup.sh 2030e38
set -euo pipefail
before=${1:?usage: startup.sh COMMIT}
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'git worktree remove --force "$scratch/tree" >/dev/null 2>&1; rm -rf "$scratch"' EXIT
git worktree add -q --detach "$scratch/tree" "$before"
python=.venv/bin/python
for command in "--help" "describe --model dcgan --image-size 28"; do
  : > "$scratch/before"; : > "$scratch/after"
  for _ in 1 2 3 4 5 6 7; do
    PYTHONPATH="$scratch/tree/src" /usr/bin/time -f %e -a -o "$scratch/before" $python -m ganforge $command > /dev/null
    /usr/bin/time -f %e -a -o "$scratch/after" $python -m ganforge $command > /dev/null
  done
  for which in before after; do
    echo "ganforge $command | $which | best $(sort -n "$scratch/$which" | head -1) s | median $(sort -n "$scratch/$which" | sed -n 4p) s"
  done
done
