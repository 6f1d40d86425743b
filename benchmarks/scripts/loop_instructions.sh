#!/bin/bash
# Instructions per 64 KiB PutObject, counted by valgrind (callgrind), in loop_cpu.py's
# long-lived process: user-space instructions of all its threads (the sink is not traced),
# from a run of 3 rounds minus a run of 1 (start-up and the warm-up round cancel out).
# Deterministic where loop_cpu.py's CPU times are noisy; it does not see system calls, and
# it counts each byte of a `rep movsb` copy as an instruction (a 64 KiB copy: ~65k).
#
# Usage, from anywhere (venv of the checkout active; ~3 minutes):
#   benchmarks/scripts/loop_instructions.sh LABEL CHECKOUT [VAR=VALUE ...]
# e.g. loop_instructions.sh now /work/main; loop_instructions.sh no-sign /work/main LOOP_WITHOUT=sign
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
label=$1; checkout=$2; shift 2
count() {
  env "$@" PYTHONPATH="$checkout" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    python -P "$here/loop_cpu.py" http "$rounds" 2>&1 | awk '/Collected/ {print $4}'
}
cd /tmp  # -P and a neutral directory: the checkout comes from PYTHONPATH alone
rounds=1; one=$(count "$@")
rounds=3; three=$(count "$@")
echo "$label $(( (three - one) / 4000 )) instructions/object"
