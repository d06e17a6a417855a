#!/bin/bash
# GPU-machine job (one call of the device tool, for its 16 CPU cores): learned-sparse top-10 on the 10^6 synthetic
# collection (benchmarks/learned_corpus.py, generated on the machine): exhaustive, approximate settings and
# pyseismic-lsr 0.5.2, one query at a time (1 thread) and sparsearch batches on 16 threads.
# Expects, git-ignored:
#   .carry/qs/pyseismic_lsr-0.5.2-cp312-*.whl   (pip download pyseismic-lsr==0.5.2 --no-deps --only-binary=:all:
#                                                 --python-version 312)
# pyseismic-lsr 0.5.2 has no bulk add_documents_by_id: the benchmark adds its documents one at a time there
# (benchmarks/query_speed_learned.py, seismic_dataset); budget ~3 minutes more than without --seismic.
# Results: $OUT/query_speed_synthetic_1e6_16.json, .png and learned_16.log.
# The models/ folders must stay out of the carried tree (64 MiB): git rm -r --cached models/… + .git/info/exclude.
set -x
T0=$(date +%s)
nproc; lscpu | grep -E "Model name|Socket|Thread|L3" ; free -g | head -2
python -m pip install --no-deps -q .carry/qs/pyseismic_lsr-0.5.2-cp312-*.whl
export PYTHONPATH=.
python -X faulthandler benchmarks/query_speed_learned.py synthetic --docs 1000000 --queries 300 --threads 16 \
  --repeat 2 --no-bmp --seismic --approx 8:0.02:100 16:0.02:200 20:0.01:200 20:0.02:200 24:0.015:200 20:0.03:200 \
  --seismic-settings 5:0.9 10:0.9 20:0.9 30:1.0 --out $OUT/query_speed_synthetic_1e6_16.json \
  --plot $OUT/query_speed_synthetic_1e6_16.png > $OUT/learned_16.log 2>&1
echo "exit $? at $(( $(date +%s) - T0 ))s"
grep -v Warn $OUT/learned_16.log | tail -30
