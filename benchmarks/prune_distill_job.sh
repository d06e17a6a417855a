#!/bin/bash
# GPU job (one call of the device tool, <= 10 min): distil the structured and gradual pruning variants of
# benchmarks/prune_distill.py from models/inference-free-biomed, ship their weights (fp16, no embeddings) to
# $OUT/shipped, then evaluate each on the shared sets while time remains.  Expects, git-ignored under .carry/:
#   data.tar.xz               $SPARSEARCH_DATA as data/{beir,classic}/...
#   pytrec_eval_terrier-*.whl (cp312), installed if the machine lacks pytrec_eval
# Leave models/inference-free-general out of the carry (git rm --cached + .git/info/exclude): 64 MiB.
# Env: VARIANTS (default "drop3-keep035 drop4-keep05 drop3"), STEPS (2000), SECS (90 per variant), BUDGET (570).
set -x
T0=$(date +%s)
python -c "import pytrec_eval" 2>/dev/null || python -m pip install --no-deps -q .carry/pytrec_eval_terrier-*.whl
mkdir -p /tmp/d && python -c "import tarfile; tarfile.open('.carry/data.tar.xz').extractall('/tmp/d')" && ls /tmp/d/data
nvidia-smi --query-gpu=name,memory.total --format=csv
VARIANTS=${VARIANTS:-"drop3-keep035 drop4-keep05 drop3"}
PYTHONPATH=. python benchmarks/prune_distill.py --model models/inference-free-biomed --data /tmp/d/data \
  --out $OUT/shipped --device cuda --bf16 --steps "${STEPS:-2000}" --max-seconds "${SECS:-90}" \
  --variants $VARIANTS > $OUT/distill.log 2>&1
echo "distill exit $? at $(( $(date +%s) - T0 ))s"
# At most 8 files of <= 16 MiB come back: the weights as one tar in 15 MB parts.
tar cf /tmp/shipped.tar -C $OUT shipped && split -b 15M /tmp/shipped.tar $OUT/shipped.tar.part- && rm -r $OUT/shipped
LEFT=$(( ${BUDGET:-570} - ($(date +%s) - T0) ))
echo "evaluation gets ${LEFT}s"
if [ $LEFT -gt 30 ]; then
  for ds in ${EVAL_SETS:-scifact nfcorpus cranfield cisi}; do
    PYTHONPATH=. timeout $(( ${BUDGET:-570} - ($(date +%s) - T0) )) python benchmarks/prune_report.py quality \
      --work /tmp/prune_distill --model models/inference-free-biomed --data /tmp/d/data --datasets $ds \
      --variants "$(echo $VARIANTS | tr ' ' ,)" --out $OUT/quality_gpu.json >> $OUT/quality.log 2>&1
    echo "quality $ds exit $? at $(( $(date +%s) - T0 ))s"
  done
fi
grep -h "NDCG" $OUT/quality.log; tail -3 $OUT/distill.log; ls -la $OUT
