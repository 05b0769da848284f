#!/bin/sh
# Run one libFuzzer target from its seed corpus and print a one-line summary:
#   run.sh BUILD NAME SECONDS RSS_MB TIMEOUT [libFuzzer flags...]
# Exit status: 0 if the target ran to its time limit, 1 on a crash, leak,
# timeout or out-of-memory (the log and the reproducer path are printed).
# New corpus entries go to BUILD/corpus/NAME, never into tests/fuzz/corpus/.
set -u
build=$1 name=$2 secs=$3 rss=$4 timeout=$5
shift 5
bin=$build/fuzz_$name
work=$build/corpus/$name
seeds=tests/fuzz/corpus/$name
art=$build/artifacts/$name
log=$build/logs/$name.log
dict=tests/fuzz/$name.dict
mkdir -p "$work" "$art" "$build/logs" "$seeds"
if [ -f "$dict" ]; then
    set -- -dict="$dict" "$@"
fi

"$bin" -max_total_time="$secs" -rss_limit_mb="$rss" -timeout="$timeout" \
    -print_final_stats=1 -artifact_prefix="$art/" "$@" "$work" "$seeds" >"$log" 2>&1
st=$?

# libFuzzer's final statistics and its last status line (cov: / ft: / corp:).
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
rssmb=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
corp=$(printf '%s\n' "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')

if [ $st -eq 0 ]; then
    result=OK
else
    result="FAILED (exit $st)"
fi
printf 'fuzz: %-16s %10s execs %7s/s  cov %5s  ft %6s  corpus %5s  rss %4s MiB  %s\n' \
    "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rssmb:-?}" "$result"
if [ $st -ne 0 ]; then
    grep -E 'ERROR: |SUMMARY: |fuzz: check failed|Test unit written to' "$log" | head -n 20
    echo "fuzz: full log in $log"
    exit 1
fi
exit 0
