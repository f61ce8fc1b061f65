#!/bin/bash
# Round 17 (#13): the same product code on two interpreters, alternating.
#   deb: a clone whose venv is made with Debian's /usr/bin/python3.11 (3.11.2, PGO + LTO,
#        libpython linked in; what `make install` now picks)
#   pye: a clone whose venv is made with pyenv's 3.11.7 (-O3, no PGO/LTO, libpython shared;
#        what `make install` picked before, being first on PATH)
# Make them (from a clean clone each):
#   git clone -q /work/main /tmp/deb && cd /tmp/deb && make install
#   git clone -q /work/main /tmp/pye && cd /tmp/pye && UV_PYTHON=/root/.pyenv/versions/3.11.7/bin/python3.11 make install
# Then: alternate.sh OUTDIR quick 1 2 ...   (pipeline_bench quick runs, deb then pye per index)
#       alternate.sh OUTDIR nurture 1 2 ... (bench/nurture_bench.py --events 3000 --repeat 2)
#       alternate.sh OUTDIR stages 1 2 ...  (scoring_bench --workers 1 --repeat 2, notifier_bench)
set -u
out=$1; what=$2; shift 2
for i in "$@"; do
  for v in deb pye; do
    cd /tmp/$v || exit 1
    echo "$(date +%T) start $what $v $i load $(cut -d' ' -f1-3 /proc/loadavg) $(readlink .venv/bin/python)"
    case $what in
      quick) .venv/bin/python bench/pipeline_bench.py --sweep-rates 20,100 --sweep-seconds 15 --check-seconds 30 \
               --json "$out/q-$v-$i.json" --plot "/tmp/$v-p.png" --sweep-plot "/tmp/$v-s.png" > "$out/q-$v-$i.txt" 2>&1 ;;
      nurture) timeout 600 .venv/bin/python bench/nurture_bench.py --events 3000 --repeat 2 \
                 --json "$out/n-$v-$i.json" > "$out/n-$v-$i.txt" 2>&1 ;;
      stages) timeout 900 .venv/bin/python bench/scoring_bench.py --events 10000 --workers 1 --repeat 2 \
                --json "$out/s-$v-$i.json" > "$out/s-$v-$i.txt" 2>&1
              timeout 900 .venv/bin/python bench/notifier_bench.py > "$out/t-$v-$i.txt" 2>&1 ;;
    esac
    echo "$(date +%T) end $what $v $i rc $?"
  done
done
