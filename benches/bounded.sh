#!/usr/bin/env bash
# Issue 16's figures: a file feed of N valid signals, each with a new symbol
# (SYM0, SYM1, ...), fed to a release build; then RSS, one /metrics (bytes,
# series, time), and RSS after 10 text and 10 JSON scrapes. Every figure is
# taken from outside the process (/proc/PID/status, curl).
#
#     cargo build --release && benches/bounded.sh                 # 200000 and 1000000 symbols
#     benches/bounded.sh target/release/tradingbot 200000         # one size
#     SCRAPES=3 benches/bounded.sh /tmp/tradingbot-before 200000  # an older build
#
# SCRAPES (default 10) sets the scrapes of each kind before RSS is read;
# TIMED (default 50) the text and JSON scrapes, taken in turns (so the
# machine's load falls on both alike), whose medians are the times.
#
# Extra settings pass through the environment (MAX_SYMBOLS=..., SYMBOLS=...).
# Needs curl and python3. Prints one block of figures per size.
set -euo pipefail

bin=${1:-target/release/tradingbot}
shift || true
sizes=("${@:-200000 1000000}")
sizes=(${sizes[*]})
scrapes=${SCRAPES:-10}
timed=${TIMED:-50}
bin=$(realpath "$bin")
work=$(mktemp -d /tmp/tb-bounded.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

kib() { awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"; }
mib() { awk -v kib="$1" 'BEGIN { printf "%.1f MiB", kib / 1024 }'; }
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

for size in "${sizes[@]}"; do
    feed=$work/feed-$size.jsonl
    python3 - "$size" > "$feed" <<'EOF'
import sys, time
# Signals of now: older than DEDUPE_WINDOW (7 days) they would be refused.
now = int(time.time() * 1000)
for i in range(int(sys.argv[1])):
    print(f'{{"id":"s{i}","ts":{now},"symbol":"SYM{i}","side":"buy","qty":1,"price":100.5}}')
EOF
    feed_bytes=$(stat -c %s "$feed")
    state=$work/state-$size
    # The journal's files in order: its segments, or a build before them's one file.
    journal_files() { ls "$state"/journal/*.jsonl "$state"/journal.jsonl 2>/dev/null || true; }
    listen=$(port)
    started=$(date +%s.%N)
    STATE_DIR=$state PORT=$listen HEALTH_BIND=127.0.0.1 HEALTH_FILE=$work/healthy \
        SIGNAL_SOURCE=file:$feed RUST_LOG=warn "$bin" 2>"$work/log-$size" &
    pid=$!
    # Done when the last checkpoint reaches the feed's end (a checkpoint is
    # journaled after the decisions it covers); polled from the journal, so
    # no scrape happens before the first measured one.
    until tail -c 400 "$(journal_files | tail -1)" 2>/dev/null | grep -q "\"off\":$feed_bytes[,}]"; do
        kill -0 "$pid" || { cat "$work/log-$size"; exit 1; }
        sleep 0.2
    done
    ingested=$(date +%s.%N)
    sleep 1 # a few idle iterations: the figures are published
    rss_ingested=$(kib "$pid" VmRSS)
    hwm_ingested=$(kib "$pid" VmHWM)

    url=http://127.0.0.1:$listen/metrics
    first=$(curl -s -o "$work/metrics" -w '%{time_total}' "$url")
    metrics_bytes=$(stat -c %s "$work/metrics")
    series=$(grep -vc '^#' "$work/metrics")
    symbol_labels=$(grep -o 'symbol="[^"]*"' "$work/metrics" | sort -u | wc -l)
    rss_one=$(kib "$pid" VmRSS)

    for _ in $(seq "$scrapes"); do
        curl -s -o /dev/null "$url"
    done
    rss_text=$(kib "$pid" VmRSS)
    for _ in $(seq "$scrapes"); do
        curl -s -o "$work/metrics.json" -H 'Accept: application/json' "$url"
    done
    json_bytes=$(stat -c %s "$work/metrics.json")
    rss_json=$(kib "$pid" VmRSS)
    text_times=()
    json_times=()
    health_times=()
    for _ in $(seq "$timed"); do
        text_times+=("$(curl -s -o /dev/null -w '%{time_total}' "$url")")
        json_times+=("$(curl -s -o /dev/null -w '%{time_total}' -H 'Accept: application/json' "$url")")
        health_times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$listen/health")")
    done
    rss_timed=$(kib "$pid" VmRSS)
    hwm_end=$(kib "$pid" VmHWM)
    median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f ms", v[int((NR + 1) / 2)] * 1000 }'; }

    reasons=$({ journal_files | xargs cat | grep -o '"reason":"[a-z_]*"' || true; } | cut -d'"' -f4 | sort | uniq -c | awk '{ printf " %s %s", $2, $1 }')
    echo "== $size distinct symbols ($(basename "$bin")${MAX_SYMBOLS:+, MAX_SYMBOLS=$MAX_SYMBOLS}${SYMBOLS:+, SYMBOLS set})"
    echo "ingest took:                     $(awk -v a="$started" -v b="$ingested" 'BEGIN { printf "%.1f s", b - a }') (from spawn)"
    echo "journal:                         $(journal_files | xargs cat | grep -c '"t":"fill"') fills, $(journal_files | xargs cat | grep -c '"t":"reject"') rejects${reasons:+ (}${reasons# }${reasons:+)}"
    echo "RSS after ingest:                $(mib "$rss_ingested") (peak $(mib "$hwm_ingested"))"
    echo "/metrics text:                   $metrics_bytes bytes, $series series, $symbol_labels symbol labels, first scrape $(awk -v t="$first" 'BEGIN { printf "%.2f ms", t * 1000 }')"
    echo "/metrics JSON:                   $json_bytes bytes"
    echo "RSS after 1 text scrape:         $(mib "$rss_one")"
    echo "RSS after $scrapes more text scrapes:   $(mib "$rss_text")"
    echo "RSS after $scrapes JSON scrapes:        $(mib "$rss_json")"
    echo "RSS after $timed more of each:         $(mib "$rss_timed") (peak over the run $(mib "$hwm_end"))"
    echo "time per scrape (median of $timed):    text $(median "${text_times[@]}"), JSON $(median "${json_times[@]}"), /health $(median "${health_times[@]}")"
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
    rm -rf "$state" "$feed"
done
