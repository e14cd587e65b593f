#!/usr/bin/env bash
# Time llama.cpp (llama-bench) on the GGUF files benchmarks/run.py timed, for `run.py --peer-json`.
#
#   bash benchmarks/peers/run_llamacpp.sh OUT.json FILE.gguf [FILE.gguf ...]
#
# Per file: llama-bench -m FILE -ngl 99 -p $PROMPT -n $GEN -d $DEPTHS -fa 0,1 -r $REPS -o json, then all
# rows merged into OUT.json as {"rows": [...], "files": [...], "command": ...}. run.py pairs rows with
# its own results by the file's name, so pass the very files run.py used (benchmarks/synthetic_gguf.py
# write prints them; run.py's JSON lists them under results[].file).
# Environment: LLAMA_BENCH (default .peer/bin/llama-bench, else /tmp/llamacpp-build/build/bin/llama-bench),
# PROMPT=512 GEN=128 DEPTHS=0,1024 REPS=5, EXTRA (more llama-bench flags).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 OUT.json FILE.gguf [FILE.gguf ...]" >&2; exit 2; }
OUT_JSON=$1; shift
BENCH=${LLAMA_BENCH:-}
for candidate in "$ROOT/.peer/bin/llama-bench" /tmp/llamacpp-build/build/bin/llama-bench; do
  [ -n "$BENCH" ] || { [ -x "$candidate" ] && BENCH=$candidate; }
done
[ -n "$BENCH" ] && [ -x "$BENCH" ] || { echo "no llama-bench: build it with benchmarks/peers/build_llamacpp.sh" >&2; exit 1; }
PROMPT=${PROMPT:-512} GEN=${GEN:-128} DEPTHS=${DEPTHS:-0,1024} REPS=${REPS:-5}
ARGS=(-ngl 99 -p "$PROMPT" -n "$GEN" -d "$DEPTHS" -fa 0,1 -r "$REPS" -o json ${EXTRA:-})

tmp=$(mktemp -d)
status=0
for f in "$@"; do
  name=$(basename "$f")
  echo "=== $name  $(date +%T)  $BENCH ${ARGS[*]}" >&2
  if "$BENCH" -m "$f" "${ARGS[@]}" > "$tmp/$name.json" 2> "$tmp/$name.err"; then
    echo "ok" >&2
  else
    status=1; echo "llama-bench failed on $name:" >&2; tail -5 "$tmp/$name.err" >&2
  fi
done
python3 - "$OUT_JSON" "$tmp" "$BENCH ${ARGS[*]}" "$@" <<'EOF'
import json, sys
from pathlib import Path
out, tmp, command, files = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4:]
rows, errors = [], {}
for f in files:
    name = Path(f).name
    try:
        rows += json.loads((tmp / f"{name}.json").read_text() or "[]")
    except (OSError, json.JSONDecodeError) as error:
        errors[name] = f"{error}: {(tmp / f'{name}.err').read_text()[-2000:]}"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps({"command": command, "files": files, "errors": errors, "rows": rows}, indent=1))
for r in rows:
    kind = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    print(f"{Path(r['model_filename']).name:44.44s} fa={r['flash_attn']} {kind:6s} @d{r.get('n_depth', 0):<5} "
          f"{r['avg_ts']:10.1f} ± {r['stddev_ts']:6.1f} tok/s  {r.get('backends', '')} {r.get('gpu_info', '')}")
print(f"wrote {out}: {len(rows)} rows" + (f", failed: {sorted(errors)}" if errors else ""))
EOF
rm -rf "$tmp"
exit $status
