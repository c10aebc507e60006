#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 90) and prints a results table.
#
#   fuzz/run-all.sh [SECONDS] [TARGET...]
#
# New inputs go to $FUZZ_WORK/<target> (default /tmp/siltdb-fuzz-work), not to the committed
# corpus; crashes go to fuzz/artifacts/<target>/ (git-ignored). Needs cargo-fuzz; on a stable
# toolchain RUSTC_BOOTSTRAP=1 turns on the nightly flags it uses.
set -u
cd "$(dirname "$0")/.."
secs=${1:-90}
shift || true
work=${FUZZ_WORK:-/tmp/siltdb-fuzz-work}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
printf '| target | seconds | executions | exec/s | coverage | corpus | result |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | --- |\n'
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  log="$work/$t.log"
  # The tools crate overrides malloc with mimalloc, which AddressSanitizer cannot share.
  san=()
  case "$t" in tools_*) san=(-s none) ;; esac
  # db_ops opens a database per input: keep its directories in memory.
  TMPDIR=/dev/shm RUSTC_BOOTSTRAP=1 timeout $((secs + 600)) \
    cargo fuzz run -a "${san[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=20 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  units=$(find "$work/$t" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then result="no crash"; else
    result="FAILED (rc $rc): $(grep -m1 -o 'Test unit written to .*' "$log")"
  fi
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$secs" "${runs:-?}" "${rate:-?}" \
    "${cov:-?}" "$units" "$result"
done
