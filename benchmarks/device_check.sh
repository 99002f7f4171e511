#!/usr/bin/env bash
# The first thing to run whenever a GPU is available (under 8 minutes on one H100/H200):
#   1. agreement   CUDA fp32 / tf32 / bf16 against CPU fp32 and the official outputs (b12 parity fixture)
#   2. confusion   the confusion matrix on CUDA (tests/test_metrics.py -k cuda)
#   3. speed       `bench speed --suite mess` for catseg-b, catseg-l and san-b: s/image per eval set, projected full MESS
#   4. run         a short `bench run` on a synthetic suite whose images have the datasets' typical sizes
#                  (untrained weights: the device machine has no network for the official ones)
#   5. torchrun    the same run through `torchrun --nproc_per_node 1`
#   6. compile     catseg-b at 150 classes with and without `--compile` (torch.compile)
#   7. grounded-sam `bench speed --suite mess` for grounded-sam-b and -l (untrained weights; skipped in the
#                  dry run: there is no tiny Grounded-SAM and the full ones take minutes per image on a CPU)
#   8. zsseg       `bench speed --suite mess` for zsseg-b (untrained weights, fp32 as the fork ran; skipped
#                  in the dry run: 100 CLIP ViT-B/16 crops per image take minutes on a CPU)
#   9. ovseg       `bench speed --suite mess` for ovseg-l (untrained weights; CLIP ViT-L/14 on up to 100 crops
#                  per image; skipped in the dry run, minutes per image on a CPU)
#  10. zegformer   `bench speed --suite mess` for zegformer-b (untrained weights, fp32; skipped in the
#                  dry run for the same reason)
# Writes one JSON (--out, default device_check.json) and prints a summary; exits 1 if a step failed.
#
#   benchmarks/device_check.sh [--out FILE]     on the GPU
#   benchmarks/device_check.sh --dry-run        every step on the CPU with catseg-tiny / san-tiny and tiny sizes (CI)
#
# Set PYTHON to choose the interpreter (default: python). Record the figures in BENCHMARKS.md.
set -uo pipefail
cd "$(dirname "$0")/.."

dry_run=0
out=device_check.json
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --out) out="$2"; shift ;;
        *) echo "usage: $0 [--dry-run] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done
py=${PYTHON:-python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "$dry_run" = 1 ]; then
    device=cpu
    agreement_args=(--tiny)
    speed_models=(catseg-tiny san-tiny)
    speed_args=(--images 1 --warmup 0 --mode whole --sets deepcrack,cub_200)
    run_args=(--model catseg-tiny --checkpoint none --precision fp32 --mode whole --batch-size 1 --workers 0)
    run_sets=deepcrack,suim
    synth_args=(--images 1 --max-side 96)
else
    device=cuda
    agreement_args=()
    speed_models=(catseg-b catseg-l san-b)
    speed_args=(--images 4 --warmup 1 --batch 4 --precision tf32)
    run_args=(--model catseg-b --checkpoint none --precision tf32 --batch-size 4 --workers 8)
    run_sets=floodnet,cub_200,foodseg103,zerowaste_f
    synth_args=(--images 8)
fi

# step NAME COMMAND...: run it with its output in $work/NAME.log; record status and seconds.
step() {
    local name=$1
    shift
    local start status ms
    start=$(date +%s%N)
    if "$@" >"$work/$name.log" 2>&1; then status=ok; else status=failed; fi
    ms=$((($(date +%s%N) - start) / 1000000))
    printf '%s\t%s\t%d.%03d\n' "$name" "$status" $((ms / 1000)) $((ms % 1000)) >>"$work/steps.tsv"
    echo "$name: $status" >&2
}

step agreement "$py" benchmarks/device_check.py agreement --device "$device" --work "$work" "${agreement_args[@]}"
if [ "$dry_run" = 1 ]; then
    printf 'confusion_cuda\tskipped\t0\n' >>"$work/steps.tsv"
else
    step confusion_cuda "$py" -m pytest -q tests/test_metrics.py -k cuda
fi
speed_json() {  # MODEL: the suite's JSON into $work/speed_MODEL.json
    "$py" -m catseg_bench speed --model "$1" --device "$device" --suite mess --json "${speed_args[@]}" >"$work/speed_$1.json"
}
for model in "${speed_models[@]}"; do
    step "speed_$model" speed_json "$model"
done
step synth_data "$py" benchmarks/device_check.py synth-data --root "$work/data" --sets "$run_sets" \
    --out "$work/synth_data.json" "${synth_args[@]}"
step run "$py" -m catseg_bench run --data-root "$work/data" --datasets "$run_sets" --output "$work/run" \
    --device "$device" --published none "${run_args[@]}"
step torchrun "$py" -m torch.distributed.run --nproc_per_node 1 -m catseg_bench run --data-root "$work/data" \
    --datasets "$run_sets" --output "$work/run_torchrun" --device "$device" --published none "${run_args[@]}"

if [ "$dry_run" = 1 ]; then  # inductor on the CPU needs a C++ toolchain and minutes per shape
    printf 'compile\tskipped\t0\n' >>"$work/steps.tsv"
else
    compile_json() {  # plain then compiled, one JSON list each
        for flag in "" --compile; do
            "$py" -m catseg_bench speed --model catseg-b --device cuda --precision tf32 --classes 150 --batch 4 \
                --images 16 --warmup 2 --json $flag >"$work/compile$flag.json" || return 1
        done
    }
    step compile compile_json
fi

if [ "$dry_run" = 1 ]; then
    printf 'speed_grounded-sam\tskipped\t0\n' >>"$work/steps.tsv"
else
    grounded_sam_json() {  # MODEL: fp32 (the fork's precision), one image per forward as the fork ran
        "$py" -m catseg_bench speed --model "$1" --device cuda --suite mess --images 2 --warmup 1 --json \
            >"$work/speed_$1.json"
    }
    for model in grounded-sam-b grounded-sam-l; do
        step "speed_$model" grounded_sam_json "$model"
    done
fi

if [ "$dry_run" = 1 ]; then
    printf 'speed_zsseg-b\tskipped\t0\n' >>"$work/steps.tsv"
else
    zsseg_json() {  # fp32, one image per forward (the fork's test batch)
        "$py" -m catseg_bench speed --model zsseg-b --device cuda --precision fp32 --suite mess --images 2 --warmup 1 \
            --json >"$work/speed_zsseg-b.json"
    }
    step speed_zsseg-b zsseg_json
fi

if [ "$dry_run" = 1 ]; then
    printf 'speed_ovseg-l\tskipped\t0\n' >>"$work/steps.tsv"
else
    ovseg_json() {  # fp32 (the fork's precision), one image per forward as the fork ran
        "$py" -m catseg_bench speed --model ovseg-l --device cuda --suite mess --images 2 --warmup 1 --json \
            >"$work/speed_ovseg-l.json"
    }
    step speed_ovseg-l ovseg_json
fi

if [ "$dry_run" = 1 ]; then
    printf 'speed_zegformer-b\tskipped\t0\n' >>"$work/steps.tsv"
else
    zegformer_json() {  # fp32 (ours; the fork's CLIP ran in float16, its MaskFormer in float32), one image per forward
        "$py" -m catseg_bench speed --model zegformer-b --device cuda --precision fp32 --suite mess --images 2 \
            --warmup 1 --json >"$work/speed_zegformer-b.json"
    }
    step speed_zegformer-b zegformer_json
fi

summary_args=(--work "$work" --out "$out")
[ "$dry_run" = 1 ] && summary_args+=(--dry-run)
"$py" benchmarks/device_check.py summary "${summary_args[@]}"
