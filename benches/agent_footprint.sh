#!/usr/bin/env bash
# The node agent's footprint: CPU share and resident memory of release `x0-agent`s on
# the grid-16 lab mesh (namespaces and veth pairs; every node runs an agent, so every
# link probe is answered), telemetry every 100 ms to the embedded broker, with and
# without the eBPF probes, and with eBPF and every message MAC'd under the node's key
# (keys.node_key). Needs root and `cargo build --release -p x0-agent`.
#   benches/agent_footprint.sh [SECONDS]      (default 60)
# X0 names the CLI used for the broker, keys and `lab up` (not measured; default the
# debug build).
set -euo pipefail
secs=${1:-60}
target=${CARGO_TARGET_DIR:-$HOME/.cache/x0-target}
agent=$target/release/x0-agent
x0=${X0:-$target/debug/x0tta6bl4}
prefix=x0fp-
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$x0" lab down --prefix "$prefix" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$x0" keys generate --out "$work/keys" >/dev/null
"$x0" broker --partitions 1 >"$work/broker" 2>/dev/null &
pids+=($!)
while ! [ -s "$work/broker" ]; do sleep 0.1; done
brokers=$(head -1 "$work/broker")
"$x0" keys fleet --out "$work/fleet.key" >/dev/null
files=$("$x0" lab up --scenario examples/lab/grid16-link-down.toml --prefix "$prefix" | sed -n 's/.* in //p' | head -1)

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for f in "$files"/*.json; do
  node=$(basename "$f" .json)
  "$x0" keys node --fleet-secret "$work/fleet.key" --node "$node" --out "$work/node-keys/$node.key" >/dev/null
done
measure() { # label, signed (0|1), extra agent flags...
  local label=$1 signed=$2; shift 2
  local run=()
  for f in "$files"/*.json; do
    node=$(basename "$f" .json)
    local sign=()
    [ "$signed" = 1 ] && sign=(--node-key "$work/node-keys/$node.key")
    RUST_LOG=off "$agent" --network "$f" --netns "$prefix$node" --brokers "$brokers" \
      --verify-key "$work/keys/verifying.key" --state-dir "$work/state" "${sign[@]}" "$@" 2>/dev/null &
    run+=($!)
  done
  pids+=("${run[@]}")
  sleep 10 # past start-up (probe loading, first assignment)
  declare -A c0
  for p in "${run[@]}"; do c0[$p]=$(cpu "$p"); done
  sleep "$secs"
  local total=0 max=0 rss=0 hwm=0
  for p in "${run[@]}"; do
    used=$(( $(cpu "$p") - ${c0[$p]} ))
    total=$((total + used)); ((used > max)) && max=$used
    r=$(awk '/VmRSS/ {print $2}' "/proc/$p/status"); ((r > rss)) && rss=$r
    h=$(awk '/VmHWM/ {print $2}' "/proc/$p/status"); ((h > hwm)) && hwm=$h
  done
  awk -v l="$label" -v n="${#run[@]}" -v t="$total" -v m="$max" -v s="$secs" -v k="$ticks" -v r="$rss" -v h="$hwm" \
    'BEGIN { printf "%-22s %2d agents · CPU per agent mean %.2f%% max %.2f%% of a core · RSS max %.1f MB (peak %.1f MB)\n", l, n, 100*t/n/k/s, 100*m/k/s, r/1024, h/1024 }'
  for p in "${run[@]}"; do kill "$p"; done
  wait "${run[@]}" 2>/dev/null || true
}
measure "eBPF probes" 0
measure "eBPF probes, signed" 1
measure "interface counters" 0 --no-ebpf
