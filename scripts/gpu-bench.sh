#!/usr/bin/env bash
# gpu-bench.sh BINARY OUTDIR: benchmark smolchat on a real GPU in one short, unattended run.
#
# A Linux tool (it needs bash, GNU coreutils' timeout, python3 and a Vulkan driver); smolchat itself is not
# Linux-only. It is built for a machine that is lent for minutes: everything it needs is the smolchat
# binary, it finishes within a total time budget (8 minutes by default), every step has its own timeout,
# and it stops with a message and a non-zero status as soon as a step fails.
#
# Steps (docs/BENCHMARKS.md, "Benchmarking a real GPU"):
#   1. list the adapters (devices, devices --json);
#   2. synthesize the SmolLM3-3B-shaped Q4_K_M file (random weights; speed does not depend on them);
#   3. check GPU against CPU logits on the synthetic smollm3-tiny model;
#   4. tune the kernels on the 3B-shaped file (--gpu-tune redo, the choices kept in OUTDIR's tune.json,
#      which the benchmarks then read);
#   5. bench --gpu --profile --json at depth 0 and SMOLCHAT_BENCH_DEPTH, bench --gpu pp/tg, and tg with
#      SMOLCHAT_BENCH_SEQS sequences decoding together (the batched step of parallel streams);
#   6. write summary.txt: the figures and decode's share of the memory-bandwidth roofline.
#
# OUTDIR receives 9 small files (what a lent machine sends back): devices.json, logits-check.json, tune.json
# (the tuning's choices, which summary.txt lists), bench.json, bench-seqs.json, profile-d0.json,
# profile-dN.json, summary.txt, run.log. The model files are large and go to a
# temporary directory that is removed at exit (SMOLCHAT_BENCH_WORKDIR keeps them in a directory of yours).
#
# Settings (environment):
#   SMOLCHAT_BENCH_LAYERS   transformer blocks of the 3B-shaped file (default: the preset's 36); 1 for a dry run
#   SMOLCHAT_BENCH_DEPTH    the deeper profile's cached positions (default 4096)
#   SMOLCHAT_BENCH_PP       prompt tokens of bench and of the profile's prefill step (default 512)
#   SMOLCHAT_BENCH_TG       generated tokens of bench (default 128)
#   SMOLCHAT_BENCH_REPS     repetitions of every measurement; medians are reported (default 3)
#   SMOLCHAT_BENCH_SEQS     sequences decoding together in the batched tg (default 4, smolchat serve's --parallel)
#   SMOLCHAT_BENCH_BUDGET   total seconds for the whole run (default 480)
#   SMOLCHAT_BENCH_WORKDIR  where the model files go (default: a temporary directory, removed at exit)
#   SMOLCHAT_PEAK_GBPS      the adapter's peak memory bandwidth in GB/s (WebGPU does not report it), e.g.
#                           3350 for an H100 SXM, 4800 for an H200; unset: only the achieved GB/s is printed
#   SMOLCHAT_GPU_ADAPTER    smolchat's own twin of --gpu-adapter, to pick one of several adapters
set -euo pipefail

usage() {
  echo "usage: $0 BINARY OUTDIR   (settings: see the comments at the top of this script)" >&2
  exit 2
}
[ $# -eq 2 ] || usage
bin=$1
out=$2
[ -x "$bin" ] || { echo "gpu-bench: $bin is not an executable file" >&2; exit 2; }
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
for tool in timeout python3; do
  command -v "$tool" >/dev/null || { echo "gpu-bench: $tool is required but not on PATH" >&2; exit 2; }
done

layers=${SMOLCHAT_BENCH_LAYERS:-}
depth=${SMOLCHAT_BENCH_DEPTH:-4096}
pp=${SMOLCHAT_BENCH_PP:-512}
tg=${SMOLCHAT_BENCH_TG:-128}
reps=${SMOLCHAT_BENCH_REPS:-3}
seqs=${SMOLCHAT_BENCH_SEQS:-4}
budget=${SMOLCHAT_BENCH_BUDGET:-480}
peak=${SMOLCHAT_PEAK_GBPS:-}
for v in "$depth" "$pp" "$tg" "$reps" "$seqs" "$budget" ${layers:+"$layers"}; do
  case $v in '' | *[!0-9]*) echo "gpu-bench: settings must be whole numbers, got '$v'" >&2; exit 2 ;; esac
done
case $peak in '' | [0-9]* ) ;; *) echo "gpu-bench: SMOLCHAT_PEAK_GBPS must be a number, got '$peak'" >&2; exit 2 ;; esac

mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/run.log
: >"$log"
if [ -n "${SMOLCHAT_BENCH_WORKDIR:-}" ]; then
  work=$SMOLCHAT_BENCH_WORKDIR
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-bench.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
# wgpu and Mesa complain on every call without a runtime directory (containers and ssh sessions lack one).
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$work}
# Flags' environment twins would silently change what is measured; the script passes what it needs.
unset SMOLCHAT_CTX SMOLCHAT_NUMERICS SMOLCHAT_THREADS SMOLCHAT_CPU SMOLCHAT_GPU SMOLCHAT_JSON SMOLCHAT_PROFILE \
  SMOLCHAT_DEPTH SMOLCHAT_PP SMOLCHAT_TG SMOLCHAT_REPS SMOLCHAT_TOP SMOLCHAT_LAYERS SMOLCHAT_MODEL \
  SMOLCHAT_GPU_TUNE SMOLCHAT_GPU_TUNE_FILE SMOLCHAT_GPU_TUNE_BUDGET SMOLCHAT_SEQS
# Every GPU command reads and writes the tuning choices in OUTDIR: step 4 makes them, the benchmarks use them.
tune=(--gpu-tune auto --gpu-tune-file "$out/tune.json")

start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
say() { echo "[gpu-bench +$(elapsed)s] $*" | tee -a "$log" >&2; }
fail() {
  say "FAILED: $*"
  say "the log of every step is in $log"
  exit 1
}

# step NAME LIMIT STDOUT CMD...: runs CMD with at most LIMIT seconds, or what is left of the budget if less;
# its stdout goes to STDOUT, its stderr to the log. A failure or a timeout ends the script.
step() {
  local name=$1 limit=$2 dest=$3 left rc
  shift 3
  left=$((budget - $(elapsed)))
  [ "$left" -gt 0 ] || fail "$name: the budget of ${budget}s is spent (SMOLCHAT_BENCH_BUDGET)"
  [ "$limit" -le "$left" ] || limit=$left
  say "$name (at most ${limit}s)"
  echo "\$ $*" >>"$log"
  rc=0
  # -k: a process that ignores SIGTERM (a wedged driver call) is killed 5 s later.
  timeout -k 5 "$limit" "$@" >"$dest" 2>>"$log" || rc=$?
  case $rc in
    0) ;;
    124) fail "$name: timed out after ${limit}s" ;;
    137) fail "$name: killed (ignored the timeout of ${limit}s, or ran out of memory)" ;;
    *) tail -n 5 "$log" | sed 's/^/    /' >&2; fail "$name: exit status $rc" ;;
  esac
}

settings="layers ${layers:-36 (preset)}, depth $depth, pp $pp, tg $tg, seqs $seqs, reps $reps, budget ${budget}s"
say "binary $bin; output in $out; $settings"

# 1. Adapters. The JSON goes back with the results; the table is for the log and a person watching.
step "1/6 devices" 30 "$work/devices.txt" "$bin" devices
tee -a "$log" <"$work/devices.txt" >&2
step "1/6 devices --json" 30 "$out/devices.json" "$bin" devices --json
# --gpu uses the "forced" pick (a hardware adapter first, else a software one) unless SMOLCHAT_GPU_ADAPTER
# names another; a software adapter only dry-runs the script. The summary names the adapter the benches used.
adapter_type=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); i=d["forced"]["index"]
print(d["adapters"][i]["type"] if i >= 0 else "none")' "$out/devices.json")
[ "$adapter_type" != none ] || fail "no WebGPU adapter: install the GPU's Vulkan driver (and libvulkan1)"
[ "$adapter_type" != cpu ] || say "NOTE: --gpu would use a CPU-type (software) adapter: this is a dry run, its speeds say nothing about a GPU"

# 2. The 3B-shaped file. synth writes it in tens of seconds; its tensors' bytes give the decode traffic.
big=$work/smollm3-3b${layers:+-${layers}l}.gguf
step "2/6 synth --preset smollm3-3b${layers:+ --layers $layers}" 240 "$work/synth.txt" \
  "$bin" synth --preset smollm3-3b ${layers:+--layers "$layers"} --out "$big"
say "$(cat "$work/synth.txt")"
step "2/6 inspect --json" 30 "$work/inspect.json" "$bin" inspect --json "$big"

# 3. GPU against CPU logits on the tiny synthetic SmolLM3 (seconds on any device). The reference is the CPU
# backend in its exact numerics (float32, as the GPU computes) and in its default fast numerics (8-bit
# activations as llama.cpp). The GPU prints its top 64, enough to find the reference's top 5 in it.
tiny=$work/smollm3-tiny.gguf
tokens=128000,12805,5304,264,892,17,99999,3,128255
step "3/6 synth --preset smollm3-tiny" 60 "$work/synth-tiny.txt" "$bin" synth --preset smollm3-tiny --out "$tiny"
step "3/6 logits --cpu --numerics exact" 60 "$work/logits-cpu-exact.json" \
  "$bin" logits --model "$tiny" --cpu --numerics exact --ctx 64 --tokens "$tokens" --top 5 --json
step "3/6 logits --cpu --numerics fast" 60 "$work/logits-cpu-fast.json" \
  "$bin" logits --model "$tiny" --cpu --numerics fast --ctx 64 --tokens "$tokens" --top 5 --json
step "3/6 logits --gpu" 90 "$work/logits-gpu.json" \
  "$bin" logits --model "$tiny" --gpu --gpu-tune off --ctx 64 --tokens "$tokens" --top 64 --json
# The error metric of cpu/conformance_test.go: at each position, the worst |Δlogit| over the reference's
# top-5 tokens, divided by max(1, |the reference's top-1 logit|). The bounds are gpu/backend_test.go's
# TestAgainstCPUBackend (1e-3 against exact, 0.1 against fast: only a broken kernel crosses that).
check=$(python3 - "$work" "$out/logits-check.json" <<'EOF'
import json, sys
work, dest = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(f"{work}/logits-{name}.json"))
gpu = load("gpu")
report = {"model": "smollm3-tiny (synth, seed 1)", "tokens": gpu["tokens"],
          "metric": "max over the reference's top-5 of |gpu - ref| / max(1, |ref top-1|), worst position",
          "gpu_top64": gpu["positions"], "against": {}}
for name, bound in (("cpu-exact", 1e-3), ("cpu-fast", 0.1)):
    ref = load(name)
    worst, at, lower, argmax = 0.0, 0, False, 0
    for r, g in zip(ref["positions"], gpu["positions"]):
        got = {int(i): v for i, v in g["top"]}
        norm = max(1.0, abs(r["top"][0][1]))
        argmax += int(r["top"][0][0]) == int(g["top"][0][0])
        for i, v in r["top"]:
            if int(i) in got:
                e = abs(got[int(i)] - v) / norm
            else:
                # Outside the GPU's top 64: its logit is at most the 64th, which bounds the error from below.
                e, lower = max(0.0, v - g["top"][-1][1]) / norm, True
            if e > worst:
                worst, at = e, r["pos"]
    report["against"][name] = {"worst": worst, "position": at, "lower_bound_only": lower, "bound": bound,
                               "pass": worst <= bound and not lower, "argmax_agrees": argmax,
                               "positions": len(ref["positions"]), "top5": ref["positions"]}
json.dump(report, open(dest, "w"), indent=1)
print("; ".join(f"GPU vs {k}: {v['worst']:.2e} ({'PASS' if v['pass'] else 'FAIL'} at bound {v['bound']:g})"
                for k, v in report["against"].items()))
EOF
) || fail "3/6 could not compare the logits"
say "3/6 $check"
check_ok=yes
case $check in *FAIL*) check_ok=no; say "3/6 the GPU's logits are off: benchmarking anyway, the run will exit 1" ;; esac

# 4. Kernel tuning on the 3B-shaped file: every weight shape's mat-vec variants are timed (redo: whatever
# tune.json held) and the fastest kept; a short bench prints the choices against the built-in ones. The
# benchmarks below read them, as a user's later loads would.
step "4/6 tune (bench --gpu --gpu-tune redo)" 90 "$work/tune-report.json" \
  "$bin" bench --model "$big" --gpu --gpu-tune redo --gpu-tune-file "$out/tune.json" --gpu-tune-budget 80s --json --pp 0 --tg 1 --reps 1 --ctx 64

# 5. The benchmarks on the 3B-shaped file. --ctx is what each needs, so the KV cache is no larger than used.
step "5/6 bench --gpu --profile --depth 0" 120 "$out/profile-d0.json" \
  "$bin" bench --model "$big" --gpu "${tune[@]}" --profile --json --depth 0 --pp "$pp" --reps "$reps" --ctx "$pp"
step "5/6 bench --gpu --profile --depth $depth" 150 "$out/profile-d$depth.json" \
  "$bin" bench --model "$big" --gpu "${tune[@]}" --profile --json --depth "$depth" --pp "$pp" --reps "$reps" --ctx $((depth + pp))
step "5/6 bench --gpu pp$pp/tg$tg" 180 "$out/bench.json" \
  "$bin" bench --model "$big" --gpu "${tune[@]}" --json --pp "$pp" --tg "$tg" --reps "$reps" --ctx $((pp > tg ? pp : tg))
step "5/6 bench --gpu --seqs $seqs tg$tg" 120 "$out/bench-seqs.json" \
  "$bin" bench --model "$big" --gpu "${tune[@]}" --json --pp 0 --tg "$tg" --seqs "$seqs" --reps "$reps" --ctx "$tg"

# 6. The summary. Bytes per decode token are the tensors' bytes (every weight is read once per token); with
# an untied output matrix, token_embd contributes one row only and is left out. The profile's bytes are
# gpu/work.go's least bytes per kernel, which also count activations and, at depth, the KV cache.
say "6/6 summary"
python3 - "$out" "$work" "$depth" "$peak" "$check_ok" "$(elapsed)" "$settings" >"$out/summary.txt" <<'EOF' ||
import json, sys, time
out, work, depth, peak, check_ok, took, settings = sys.argv[1:]
peak = float(peak) if peak else None
js = lambda path: json.load(open(path))
dev, chk, bench = js(f"{out}/devices.json"), js(f"{out}/logits-check.json"), js(f"{out}/bench.json")
together = js(f"{out}/bench-seqs.json")
ins = js(f"{work}/inspect.json")
# The adapter the benchmarks ran on ("NAME (TYPE, BACKEND)"), with its details from devices.json.
a = next((x for x in dev["adapters"] if bench["adapter"].startswith(x["name"] + " (")),
         dev["adapters"][dev["forced"]["index"]])
names = {t["name"] for t in ins["tensors"]}
weights = sum(t["bytes"] for t in ins["tensors"]
              if not (t["name"] == "token_embd.weight" and "output.weight" in names))

def roof(bytes_per_tok, tok_per_s):
    gbps = bytes_per_tok * tok_per_s / 1e9
    if peak:
        return f"{gbps:.3g} GB/s = {100 * gbps / peak:.3g}% of the {peak:g} GB/s peak"
    return f"{gbps:.3g} GB/s (peak unknown: SMOLCHAT_PEAK_GBPS unset)"

print(f"smolchat gpu-bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {settings}")
print(f"adapter  #{a['index']} {a['name']} ({a['type']}, {a['backend']}; driver {a['driver'] or '?'};"
      f" features {','.join(a['features']) or '-'})")
if a["type"] == "cpu":
    print("         DRY RUN: a CPU-type (software) adapter; these speeds say nothing about a GPU")
print(f"model    {bench['model']} ({bench['quant']}), {ins['size']:,} bytes;"
      f" {weights / 1e9:.3f} GB of tensors read per decode token")
print("check    smollm3-tiny, worst |Δlogit| / max(1, |top-1|) over the CPU's top-5 at each position:")
for k, v in chk["against"].items():
    lb = " (lower bound: a top-5 id outside the GPU's top 64)" if v["lower_bound_only"] else ""
    print(f"check    GPU vs {k}: {v['worst']:.2e}{lb} at pos {v['position']}, {'PASS' if v['pass'] else 'FAIL'}"
          f" (bound {v['bound']:g}); argmax agrees {v['argmax_agrees']}/{v['positions']}")
tu = js(f"{work}/tune-report.json").get("gpu_tuning") or {}
print(f"tune     {tu.get('timed', 0)} shapes timed in {tu.get('seconds', 0):.1f} s (choices in tune.json):")
for c in tu.get("choices", []):
    vs = f", built-in {1e3 * c['default_seconds']:.3f} ms ({c['default_seconds'] / c['seconds']:.2f}x)" if c.get("default_seconds") else ""
    print(f"         {c['shape']:<28} {c['variant']:<30} {1e3 * c['seconds']:.3f} ms{vs}")
# StepStats has no JSON tags: its keys are the Go field names.
st = {k.lower(): v for k, v in (bench.get("decode_step") or {}).items()}
print(f"bench    pp{bench['pp']} {bench['pp_tokens_per_second']:.2f} tok/s, tg{bench['tg']}"
      f" {bench['tg_tokens_per_second']:.2f} tok/s (median of {bench['reps']});"
      f" {st.get('dispatches', '?')} dispatches, {st.get('submits', '?')} submit(s) per decode token")
print(f"batched  tg{together['tg']} with {together['seqs']} sequences decoding together:"
      f" {together['tg_tokens_per_second']:.2f} tok/s in all (median of {together['reps']}),"
      f" {together['tg_tokens_per_second'] / bench['tg_tokens_per_second']:.2f}x one sequence's")
print(f"roofline decode tg{bench['tg']}: {weights / 1e9:.3f} GB/token × {bench['tg_tokens_per_second']:.2f} tok/s"
      f" = {roof(weights, bench['tg_tokens_per_second'])}")
for d in ("0", depth):
    p = js(f"{out}/profile-d{d}.json")
    dec = p["rows"]
    moved = sum(r["decode"]["gb_per_second"] * r["decode"]["seconds_per_token"] for r in dec) * 1e9
    top = sorted(dec, key=lambda r: -r["decode"]["share"])[:3]
    # Each kernel timed alone (one submit each): the sum includes a submit's fixed cost per step.
    print(f"profile  depth {p['depth']}: decode {1e3 * p['decode_seconds_per_token']:.3f} ms/token summed over"
          f" kernels timed alone; prefill {1e3 * p['prefill_seconds_per_token']:.3f} ms/token"
          f" (steps of {p['prefill_tokens']})")
    print(f"         decode kernels: {moved / 1e9:.3f} GB/token → {roof(moved, 1 / p['decode_seconds_per_token'])}")
    print("         largest: " + "; ".join(
        f"{r['step']} {100 * r['decode']['share']:.0f}% ({r['decode']['gb_per_second']:.3g} GB/s)" for r in top))
print(f"time     {took} s")
if check_ok != "yes":
    print("RESULT   FAILED: the GPU's logits differ from the CPU's beyond the tests' bounds")
EOF
  fail "6/6 could not write the summary"
tee -a "$log" <"$out/summary.txt"
[ "$check_ok" = yes ] || fail "3/6 the GPU's logits differ from the CPU's beyond the tests' bounds (see summary.txt)"
say "done in $(elapsed)s"
