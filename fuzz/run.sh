#!/usr/bin/env bash
# Builds the AFL++ targets and fuzzes each for SECONDS (default 60), one
# after the other; exits non-zero if any crash was found. Needs cargo-afl
# (`cargo install cargo-afl`), which works on the stable toolchain.
#   fuzz/run.sh 5            # the short run .ci/run does
#   fuzz/run.sh 3600 signal  # an hour on one target
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("${@:-signal lines webhook_auth env_file routes}")
targets=(${targets[*]})
target_dir=${CARGO_TARGET_DIR:-target}
out=${FUZZ_OUT:-$target_dir/afl-out}
cargo afl build --release --quiet
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
crashed=0
for target in "${targets[@]}"; do
    rm -rf "${out:?}/$target"
    mkdir -p "$out/$target"
    cargo afl fuzz -V "$seconds" -i "seeds/$target" -o "$out/$target" \
        "$target_dir/release/$target" > "$out/$target.log" 2>&1 || true
    stats="$out/$target/default/fuzzer_stats"
    [ -f "$stats" ] || { echo "$target: afl did not run; see $out/$target.log"; exit 1; }
    execs=$(awk -F' *: *' '$1=="execs_done"{print $2}' "$stats")
    rate=$(awk -F' *: *' '$1=="execs_per_sec"{print $2}' "$stats")
    crashes=$(awk -F' *: *' '$1=="saved_crashes"{print $2}' "$stats")
    paths=$(awk -F' *: *' '$1=="corpus_count"{print $2}' "$stats")
    echo "$target: ${seconds}s, $execs execs ($rate/s), corpus $paths, crashes $crashes"
    if [ "$crashes" != 0 ]; then
        echo "  crashing inputs: $out/$target/default/crashes/"
        crashed=1
    fi
done
exit "$crashed"
