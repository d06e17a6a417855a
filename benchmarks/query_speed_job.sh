#!/bin/bash
# GPU-machine job (one call of the device tool, for its 16 CPU cores): BM25 top-10 QPS of sparsearch against bm25s
# at 1 and 16 threads on SciFact, NFCorpus, the 10^5 real and the 10^6 synthetic corpora (benchmarks/query_speed.py).
# Expects, git-ignored:
#   .carry/data.tar.xz       $SPARSEARCH_DATA as data/{beir,classic}/... (SciFact, NFCorpus and their queries)
#   .carry/qs/*.whl          bm25s 0.3.16 and PyStemmer wheels for the machine's Python (cp312)
#   .carry/qs/real-100000.tar.xz   ~/.cache/sparsearch/scale/real-100000 (built from Debian dictionaries, not there)
# The 10^6 corpus is generated on the machine from benchmarks/data/scale_model.npz.  Results: $OUT/query_speed_16.json.
# SETS="nfcorpus synthetic-1000000" runs some of the sets only (real-100000's tarball is needed only for it).
# The models/ folders must stay out of the carried tree (64 MiB): git rm -r --cached models/… + .git/info/exclude.
set -x
T0=$(date +%s)
nproc; lscpu | grep -E "Model name|Socket|Thread|L3" ; free -g | head -2
python -m pip install --no-deps -q .carry/qs/*.whl
mkdir -p /tmp/d && python -c "import tarfile; tarfile.open('.carry/data.tar.xz').extractall('/tmp/d')"
export SPARSEARCH_DATA=/tmp/d/data PYTHONPATH=.
SETS=${SETS:-scifact real-100000 synthetic-1000000 nfcorpus}
mkdir -p ~/.cache/sparsearch/scale
[[ " $SETS " == *" real-100000 "* ]] && tar xJf .carry/qs/real-100000.tar.xz -C ~/.cache/sparsearch/scale
[[ " $SETS " == *" synthetic-1000000 "* ]] && python benchmarks/scale_corpus.py synthetic --n 1000000 > $OUT/scale_corpus.log 2>&1
echo "corpus ready at $(( $(date +%s) - T0 ))s"
# One process per set (results merge into one JSON): a crash in one set (bm25s 0.3.16 read out of bounds on
# NFCorpus' wordless queries before query_speed.py kept them from it) must not lose the others; faulthandler names
# the crashing frame.
for s in $SETS; do
  python -X faulthandler benchmarks/query_speed.py --sets $s --threads 1 16 --rounds 3 --one-at-a-time 200 \
    --methods auto --work /tmp/qs-work --out $OUT/query_speed_16.json --plot $OUT/query_speed_16.png 2>&1 \
    | grep -v "encoding:" >> $OUT/query_speed_16.log
  echo "$s exit ${PIPESTATUS[0]} at $(( $(date +%s) - T0 ))s" | tee -a $OUT/query_speed_16.log
done
echo "done at $(( $(date +%s) - T0 ))s"
grep -v Warn $OUT/query_speed_16.log | grep '|\|exit\|File\|Fatal' | tail -40
