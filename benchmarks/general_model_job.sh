#!/bin/bash
# GPU job (one call of the device tool, <= 10 min): train the general inference-free model, table it zero-shot,
# then sparsearch adapt on the shared sets (smallest first) while time remains.  Expects, git-ignored under .carry/:
#   minilm/                 all-MiniLM-L6-v2 (sentence-transformers folder, fp16 weights: 46 MB)
#   gen-data-gpu.tar.xz     python benchmarks/general_data.py --out gen-data-gpu --max-per-source debian=36000 \
#                             --max-per-source wordnet=8000 --max-per-source gcide=8000 --max-per-source foldoc=8000
#   data.tar.xz             $SPARSEARCH_DATA as data/{beir,classic}/...
#   pytrec_eval_terrier-*.whl (cp312), installed if the machine lacks pytrec_eval
# Leave models/ out of the carry (git rm --cached + .git/info/exclude) to stay under 64 MiB.  Results land in $OUT.
set -x
T0=$(date +%s)
python -c "import pytrec_eval" 2>/dev/null || python -m pip install --no-deps -q .carry/pytrec_eval_terrier-*.whl
mkdir -p /tmp/g /tmp/minilm /tmp/d && python -c "import tarfile; tarfile.open('.carry/gen-data-gpu.tar.xz').extractall('/tmp/g'); tarfile.open('.carry/data.tar.xz').extractall('/tmp/d')" && ls /tmp/g /tmp/d/data
cp .carry/minilm/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} /tmp/minilm/
nvidia-smi --query-gpu=name,memory.total --format=csv
PYTHONPATH=. timeout ${TRAIN_LIMIT:-450} python benchmarks/general_model.py train --data /tmp/g/gen-data-gpu --base /tmp/minilm \
  --out /tmp/gm --steps "${STEPS:-2000}" --max-train-seconds "${SECS:-250}" --validate-every "${VEVERY:-500}" \
  --validation-docs 8000 --eval /tmp/d/data --report $OUT/report.json > $OUT/train.log 2>&1
echo "train exit $? at $(( $(date +%s) - T0 ))s"
cp /tmp/gm/report.json /tmp/gm/run/train_log.jsonl $OUT/ 2>/dev/null
if [ -d /tmp/gm/run/model ]; then
  tar cf /tmp/model.tar -C /tmp/gm/run model && split -b 15M /tmp/model.tar $OUT/model.tar.part-
  LEFT=$(( ${BUDGET:-585} - ($(date +%s) - T0) ))
  echo "adapt gets ${LEFT}s"
  if [ $LEFT -lt 90 ]; then echo "no time left for adapt"; ls -la $OUT; exit 0; fi
  PYTHONPATH=. timeout $LEFT python benchmarks/general_model.py adapt --model /tmp/gm/run/model --eval /tmp/d/data \
    --out /tmp/ad --report $OUT/adapt_report.json --dense-teacher .carry/minilm --steps "${ASTEPS:-300}" > $OUT/adapt.log 2>&1
  echo "adapt exit $? at $(( $(date +%s) - T0 ))s"
  cp /tmp/ad/adapt_report.json $OUT/ 2>/dev/null
fi
tail -3 $OUT/train.log; tail -3 $OUT/adapt.log; ls -la $OUT
