#!/usr/bin/env bash
# make demo: serve an emulated C60 on a virtual serial port (a pty), pull its log into a local
# archive over that port at 115200 baud, then show what a technician does with it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo/out
mkdir -p "$out"
port="$out/turbine"
db="$out/archive.sqlite"
rm -f "$db" "$db-wal" "$db-shm"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "turbosim: a C60 with 2000 operating hours of history, served on the pty $port"
coproc SIM { exec turbosim serve --pty "$port" --model C60 --serial C60-DEMO-0001 --seed 7 --history 2000h \
    --fault 5005@1200h; }
trap 'kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true' EXIT
read -r -t 60 ready <&"${SIM[0]}" || { echo "turbosim did not become ready" >&2; exit 1; }
echo "$ready"

say "turbolog info $port   (and what a pull would fetch into the demo's archive)"
turbolog info "$port" --db "$db"

say "turbolog pull $port   (paced at the line rate, 115200 baud 8N1)"
turbolog pull "$port" --db "$db"

say "a second pull fetches only what is new"
turbolog pull "$port" --db "$db"

say "turbolog summary C60-DEMO-0001"
turbolog summary C60-DEMO-0001 --db "$db"

say "turbolog faults C60-DEMO-0001"
turbolog faults C60-DEMO-0001 --db "$db"

say "what fault 5005 means, and its freeze-frame"
turbolog codes 5005
turbolog faults C60-DEMO-0001 --code 5005 --detail --db "$db"

say "exports and a plot"
turbolog export C60-DEMO-0001 --format csv --out "$out/C60-DEMO-0001.csv" --db "$db"
turbolog plot C60-DEMO-0001 --out "$out/C60-DEMO-0001.png" --db "$db"
turbolog plot C60-DEMO-0001 --since 7d --out "$out/C60-DEMO-0001-last-week.svg" --db "$db"   # the log's last week

say "done: archive $db, export $out/C60-DEMO-0001.csv, plot $out/C60-DEMO-0001.png"
