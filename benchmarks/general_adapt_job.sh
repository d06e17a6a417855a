#!/bin/bash
# GPU job (one call of the device tool): `sparsearch adapt` of the general model on the four shared sets, smallest
# first, each evaluated after adapting (benchmarks/general_model.py adapt).  Teachers: BM25 and the model itself
# (sparsearch adapt's default); the model (45 MB fp16) and all-MiniLM-L6-v2 (45 MB) do not fit one 64 MiB carry
# together.  Expects, git-ignored under .carry/:
#   genmodel/               models/inference-free-general (leave models/ out of the carry: git rm --cached +
#                           .git/info/exclude, as benchmarks/general_model_job.sh says)
#   data.tar.xz             $SPARSEARCH_DATA as data/{beir,classic}/...
#   pytrec_eval_terrier-*.whl (cp312), installed if the machine lacks pytrec_eval
#   adapt-embeddings/SET.npz  (optional) all-MiniLM-L6-v2's embeddings of SET's documents and pseudo-queries, made on
#                           a CPU by `python benchmarks/general_model.py embed --model models/inference-free-general
#                           --dense-teacher MINILM --eval $SPARSEARCH_DATA --out .carry/adapt-embeddings`: the dense
#                           teacher of the sets that have one.  Carry one set's file per call (with SETS=that set):
#                           3-12 MB each beside the 45 MB model; SciFact's 12 MB needs a data tar of the one set.
# BUDGET (s) caps the adapt loop; ASTEPS its steps per set; SETS the sets (default all four, smallest first);
# DATA the data tar (default .carry/data.tar.xz); EMBEDDINGS the folder of SET.npz (default .carry/adapt-embeddings).
# Results land in $OUT/adapt_report.json.
set -x
T0=$(date +%s)
python -c "import pytrec_eval" 2>/dev/null || python -m pip install --no-deps -q .carry/pytrec_eval_terrier-*.whl
mkdir -p /tmp/d && python -c "import tarfile; tarfile.open('${DATA:-.carry/data.tar.xz}').extractall('/tmp/d')"
sha256sum .carry/genmodel/model.safetensors; nvidia-smi --query-gpu=name --format=csv,noheader
PYTHONPATH=. timeout ${BUDGET:-500} python benchmarks/general_model.py adapt --model .carry/genmodel --eval /tmp/d/data \
  --out /tmp/ad --report $OUT/adapt_report.json --steps "${ASTEPS:-300}" --sets ${SETS:-cranfield cisi nfcorpus scifact} \
  $(E=${EMBEDDINGS:-.carry/adapt-embeddings}; [ -d $E ] && echo --dense-embeddings $E) > $OUT/adapt.log 2>&1
echo "adapt exit $? at $(( $(date +%s) - T0 ))s"
grep -v "Loading weights" $OUT/adapt.log | grep -v "trainer step" > $OUT/adapt_short.log
tail -5 $OUT/adapt_short.log; cat $OUT/adapt_report.json
