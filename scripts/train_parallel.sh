#!/usr/bin/env bash
# Train several experiments at once on one machine (a GPU, or a many-core CPU), each pausing
# after LIMIT seconds of training; progress is packed into OUT/runs.tgz every POLL seconds, so a
# session that is cut short still returns its checkpoints. Run again to continue: every run
# resumes from its checkpoint.
#
# usage: LIMIT=450 DEVICE=cuda OUT=/tmp/out scripts/train_parallel.sh EXPERIMENT...
# environment: METALEARN_LAB_DATA (Omniglot zips), METALEARN_LAB_RUNS (run folders),
#              ITERATIONS (upper bound on steps, default 100000), THREADS (per run, default 2),
#              POLL (seconds between progress reports, default 30), PYTHON (default python3)
set -u
: "${OUT:?set OUT to the folder for runs.tgz and the logs}" "${METALEARN_LAB_RUNS:?set METALEARN_LAB_RUNS}"
LIMIT=${LIMIT:-450} DEVICE=${DEVICE:-cuda} ITERATIONS=${ITERATIONS:-100000} THREADS=${THREADS:-2} POLL=${POLL:-30}
PY=${PYTHON:-python3}
mkdir -p "$OUT/logs" "$METALEARN_LAB_RUNS"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
if [ "$DEVICE" = cuda ]; then $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" || { echo "no CUDA device"; exit 3; }; fi

pack() { tar czf "$OUT/runs.tgz.tmp" -C "$METALEARN_LAB_RUNS" . && mv "$OUT/runs.tgz.tmp" "$OUT/runs.tgz"; }

pids=()
for e in "$@"; do
  PYTHONUNBUFFERED=1 $PY -m metalearn_lab.cli train "$e" --device "$DEVICE" --iterations "$ITERATIONS" \
    --time-limit "$LIMIT" --threads "$THREADS" > "$OUT/logs/$e.log" 2>&1 &
  pids+=($!)
done
start=$(date +%s)
while :; do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" -eq 0 ] && break
  sleep "$POLL"
  echo "--- $(( $(date +%s) - start )) s, $alive running"
  for e in "$@"; do printf '%-26s %s\n' "$e" "$(tail -c 4000 "$OUT/logs/$e.log" | tr '\r' '\n' | grep -v '^\s*$' | tail -n 1 | cut -c1-110)"; done
  pack
done
pack
echo "=== done after $(( $(date +%s) - start )) s"
for e in "$@"; do echo "== $e"; tail -c 3000 "$OUT/logs/$e.log" | tr '\r' '\n' | grep -v '^\s*$' | tail -n 3; done
