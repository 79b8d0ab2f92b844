#!/bin/bash
# `costhill runs` on one store, before and after a change, interleaved (7 rounds), printing each
# side's median seconds. Usage: bench/listing.sh STORE OLD_SRC NEW_SRC
# (OLD_SRC/NEW_SRC: the src/ folders of two checkouts, run with this checkout's .venv.) Each side
# reads its own copy of STORE: a newer costhill migrates a store it opens, which an older one then
# refuses.
set -euo pipefail
store=$1; old=$2; new=$3; py="$(dirname "$0")/../.venv/bin/python"
for side in old new; do : > "/tmp/listing-$side"; cp "$store" "/tmp/listing-$side.db"; done
for _ in 1 2 3 4 5 6 7; do
  for side in old new; do
    src=$old; [ "$side" = new ] && src=$new
    start=$(date +%s.%N)
    PYTHONPATH=$src "$py" -m costhill runs --store "/tmp/listing-$side.db" > /dev/null
    echo "$(date +%s.%N) - $start" | bc >> "/tmp/listing-$side"
  done
done
for side in old new; do echo "$side median $(sort -n "/tmp/listing-$side" | sed -n 4p) s"; done
rm -f /tmp/listing-old.db* /tmp/listing-new.db*
