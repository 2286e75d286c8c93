#!/usr/bin/env bash
# Builds the AFL++ fuzz targets (fuzz/, cargo-afl on the stable toolchain) and runs each
# one for SECONDS (default 600), two at a time under `nice -n 19`, starting from the
# committed corpus fuzz/corpus/<target>/. Prints per target the executions, exec/s and
# unique crashes and hangs; the findings are in fuzz/out/<target>/default/{crashes,hangs}.
#
# Usage: tools/fuzz.sh [SECONDS] [TARGET...]
# Needs: cargo install cargo-afl && cargo afl config --build (once per toolchain).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
shift || true
all=(binance_ws binance_snapshot alpaca recording tardis binance_csv evfile config)
targets=("${@:-${all[@]}}")

nice -n 19 cargo afl build --release

export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
# Input files larger than this are not fuzzed (the committed corpora stay far below).
export AFL_INPUT_LEN_MAX=${AFL_INPUT_LEN_MAX:-262144}

run() {
  local t=$1
  mkdir -p out
  rm -rf "out/$t"
  # -V: stop after SECONDS; -t: 1 s per input (a hang beyond that is saved in hangs/);
  # -m: 2 GiB address-space cap, so unbounded memory is a crash, not a dead machine.
  nice -n 19 cargo afl fuzz -V "$secs" -t 1000 -m 2048 -i "corpus/$t" -o "out/$t" "target/release/$t" \
    > "out/$t.log" 2>&1 || true
}

report() {
  local t=$1 s="out/$1/default/fuzzer_stats"
  if [ ! -f "$s" ]; then
    printf '%-18s no stats (see fuzz/out/%s.log)\n' "$t" "$t"
    return
  fi
  awk -v t="$t" -F' *: *' '
    { v[$1] = $2 }
    END {
      secs = v["run_time"] + 0; if (secs == 0) secs = v["last_update"] - v["start_time"]
      printf "%-18s %6.1f min %12d execs %8.0f exec/s %4d crashes %4d hangs %5d paths\n", t, secs / 60, v["execs_done"], (secs > 0 ? v["execs_done"] / secs : 0), v["saved_crashes"], v["saved_hangs"], v["corpus_count"]
    }' "$s"
}

# Two targets at a time: the machine has two cores.
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run "${targets[i]}" &
  if [ $((i + 1)) -lt ${#targets[@]} ]; then run "${targets[i + 1]}" & fi
  wait
done
# AFL ends its targets with a signal, so their scratch directories (fuzz/src/lib.rs) stay:
# remove those whose process is gone.
for d in /dev/shm/statarb-fuzz-* "${TMPDIR:-/tmp}"/statarb-fuzz-*; do
  [ -d "$d" ] || continue
  pid=${d##*statarb-fuzz-}
  pid=${pid%%-*}
  kill -0 "$pid" 2>/dev/null || rm -rf "$d"
done
for t in "${targets[@]}"; do report "$t"; done
