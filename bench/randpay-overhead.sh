#!/usr/bin/env bash
# randpay-overhead.sh — what RANDPAY metering costs a payee Kamailio, one invocation:
#
#   1. calls per second through payer Kamailio → payee Kamailio → SIPp callee, SIPp
#      placing short calls (INVITE, 200, ACK, BYE) with CONC calls in flight, with
#      the payee's shipped config (dialplan/kamailio/randpay-payee.cfg) and with the
#      same config without randpay_require (randpay_role off); the payer is the
#      shipped randpay-payer.cfg both times. Prints both rates and the ratio
#      (goal: at least 0.8x). With metering every call also costs a 402 round trip,
#      three node calls (mkchap, mktx, accept) and the ledgers' synchronous writes.
#   2. node RPC calls per metered call-minute: HOLD_CALLS calls held HOLD_SECS
#      with a 20 s interval, the devnet counting every call it answers
#      (devnet_rpccount); printed as measured and scaled to the default 60 s interval.
#
# The node is ness-devnet (release build) with the wallets "payee" and "payer".
# Run from the repository: bench/randpay-overhead.sh
set -euo pipefail

NAME=randpay-overhead
CONC=${CONC:-20}            # calls in flight
CALLS=${CALLS:-3000}        # calls per throughput run
WARMUP=${WARMUP:-200}
HOLD_CALLS=${HOLD_CALLS:-20}
HOLD_SECS=${HOLD_SECS:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/$NAME.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
need() { # need <binary> <debian package>
  command -v "$1" >/dev/null 2>&1 && return 0
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || { echo "$NAME: cannot install $2" >&2; exit 1; }
}
need kamailio kamailio
need kamcmd kamailio
need sipp sip-tester
need curl curl

echo "# building (release)" >&2
(cd "$ROOT" && cargo build --release --locked -p ness-kamailio-module -p ness-devnet >&2)
SO=$ROOT/target/release/libprivateness.so

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPC_PORT=$(free_port)
PASS=bench-$$
NESS_DEVNET_RPCPASSWORD=$PASS "$ROOT/target/release/ness-devnet" --listen 127.0.0.1:$RPC_PORT --rpcuser bench --automine \
  >"$WORK/devnet.log" 2>&1 &
DEVNET_PID=$!
PIDS+=($!)
rpc() { # rpc <wallet|""> <method> <json params>
  curl -s --max-time 30 --user "bench:$PASS" -H 'content-type: application/json' \
    -d "{\"method\":\"$2\",\"params\":$3,\"id\":1}" "http://127.0.0.1:$RPC_PORT/$1"
}
for _ in $(seq 50); do rpc "" getblockcount '[]' >/dev/null 2>&1 && break; sleep 0.1; done
rpc "" createwallet '["payee"]' >/dev/null
rpc "" createwallet '["payer"]' >/dev/null
rpc wallet/payer generate '[1000]' >/dev/null   # ~100 000 EMC: every ticket locks its amount for interval+grace

UAS_PORT=$(free_port); PAYEE_PORT=$(free_port); PAYER_PORT=$(free_port)
sipp -sf "$ROOT/tests/sipp/uas_answer.xml" -i 127.0.0.1 -p "$UAS_PORT" -nostdin -bg >"$WORK/uas.out" 2>&1 || true
UAS_PID=$(pgrep -n -f -- "-p $UAS_PORT -nostdin -bg" || true)
[ -n "$UAS_PID" ] && PIDS+=("$UAS_PID")

# The payee config without metering: randpay_require() and its exit removed, role off.
sed -e 's/"randpay_role", "payee"/"randpay_role", "off"/' -e '/if (!randpay_require()) {/,/^\t}/d' \
  "$ROOT/dialplan/kamailio/randpay-payee.cfg" >"$WORK/payee-plain.cfg"
if grep -q 'randpay_require' "$WORK/payee-plain.cfg"; then echo "$NAME: could not strip randpay_require" >&2; exit 1; fi

KAM_PIDS=()
start_kam() { # start_kam <name> <cfg> <port> <defines...>
  local name=$1 cfg=$2 port=$3; shift 3
  mkdir -p "$WORK/$name"
  local args=(-f "$cfg" -DD -E -e -m 256 -M 16 -Y "$WORK/$name" -P "$WORK/$name/pid"
    -A "LISTEN=udp:127.0.0.1:$port" -A "PRIVATENESS_SO=\"$SO\"" -A "NODE_URL=\"http://127.0.0.1:$RPC_PORT/\""
    -A 'RPC_USER="bench"' -A "RPC_PASSWORD=\"$PASS\"" -A "LEDGER=\"$WORK/$name/ledger.db\""
    -A "CTL_SOCKET=\"unix:$WORK/$name/ctl\"" -A CHILDREN=4)
  for d in "$@"; do args+=(-A "$d"); done
  kamailio "${args[@]}" >"$WORK/$name/log" 2>&1 &
  KAM_PIDS+=($!); PIDS+=($!)
  for _ in $(seq 100); do kamcmd -s "unix:$WORK/$name/ctl" core.uptime >/dev/null 2>&1 && break; sleep 0.1; done
}
stop_kams() {
  for p in "${KAM_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${KAM_PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  KAM_PIDS=()
}
SIDE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_pair() { # start_pair <mode> <payee cfg> <tariff>
  local side=() url=()
  if [ "$1" != plain ] && [ "$1" != 402 ]; then
    side=("SIDE_CHANNEL=\"127.0.0.1:$SIDE_PORT\"" 'SIDE_PEERS="127.0.0.1"')
    url=("PAYEE_URL=\"http://127.0.0.1:$SIDE_PORT\"")
  fi
  start_kam "payee-$1" "$2" "$PAYEE_PORT" "TARGET=\"sip:127.0.0.1:$UAS_PORT\"" 'WALLET="payee"' "TARIFF=\"$3\"" "${side[@]}"
  start_kam "payer-$1" "$ROOT/dialplan/kamailio/randpay-payer.cfg" "$PAYER_PORT" \
    "PAYEE=\"sip:127.0.0.1:$PAYEE_PORT\"" 'WALLET="payer"' 'MAX_PRICE="1"' "${url[@]}"
  sleep 1
}

# CPU time (clock ticks) of a Kamailio: its main process and all its children.
cpu_ticks() { # cpu_ticks <main pid>
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1"); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $total
}
# CPU ticks of one Kamailio process by its description in core.ps (e.g. RANDPAY).
proc_ticks() { # proc_ticks <ctl dir> <description>
  local p
  p=$(kamcmd -s "unix:$1/ctl" core.ps 2>/dev/null | grep -B1 "$2" | head -1 | tr -dc 0-9)
  [ -n "$p" ] && [ -r "/proc/$p/stat" ] && awk '{print $14 + $15}' "/proc/$p/stat" || echo 0
}
HZ=$(getconf CLK_TCK)

# run_calls <label> <calls>: prints "<calls/s> <successful> <failed>"
run_calls() {
  local label=$1 n=$2 port; port=$(free_port)
  local t0 t1
  t0=$(date +%s.%N)
  sipp -sf "$ROOT/tests/sipp/uac.xml" "127.0.0.1:$PAYER_PORT" -s +4930123456 -r 5000 -l "$CONC" -m "$n" \
    -i 127.0.0.1 -p "$port" -nostdin -timeout 300 -trace_screen -screen_file "$WORK/$label.screen" >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  local ok failed
  # The screen's last table, cumulative column.
  ok=$(grep "Successful call" "$WORK/$label.screen" | tail -1 | awk '{print $NF}' || echo 0)
  failed=$(grep "Failed call" "$WORK/$label.screen" | tail -1 | awk '{print $NF}' || echo 0)
  awk -v ok="${ok:-0}" -v f="${failed:-0}" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f %d %d\n", ok / (b - a), ok, f }'
}

TARIFF_FAST="+ 0.01 risk=10 interval=60 grace=10"
declare -A RATE
for mode in ${MODES:-plain randpay}; do
  cfg=$ROOT/dialplan/kamailio/randpay-payee.cfg
  [ "$mode" = plain ] && cfg=$WORK/payee-plain.cfg
  # (mode 402: metered, without the side channel)
  start_pair "$mode" "$cfg" "$TARIFF_FAST"
  run_calls "$mode-warmup" "$WARMUP" >/dev/null
  payee_pid=${KAM_PIDS[0]}; payer_pid=${KAM_PIDS[1]}
  c0=$(cpu_ticks "$payee_pid"); r0=$(cpu_ticks "$payer_pid"); m0=$(proc_ticks "$WORK/payee-$mode" RANDPAY); d0=$(cpu_ticks "$DEVNET_PID")
  read -r rate ok failed < <(run_calls "$mode" "$CALLS")
  c1=$(cpu_ticks "$payee_pid"); r1=$(cpu_ticks "$payer_pid"); m1=$(proc_ticks "$WORK/payee-$mode" RANDPAY); d1=$(cpu_ticks "$DEVNET_PID")
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="${ok:-0}" -v hz="$HZ" 'BEGIN { printf "%.0f", (n > 0 ? (b - a) * 1e6 / hz / n : 0) }')
  pcpu=$(awk -v a="$r0" -v b="$r1" -v n="${ok:-0}" -v hz="$HZ" 'BEGIN { printf "%.0f", (n > 0 ? (b - a) * 1e6 / hz / n : 0) }')
  mcpu=$(awk -v a="$m0" -v b="$m1" -v n="${ok:-0}" -v hz="$HZ" 'BEGIN { printf "%.0f", (n > 0 ? (b - a) * 1e6 / hz / n : 0) }')
  dcpu=$(awk -v a="$d0" -v b="$d1" -v n="${ok:-0}" -v hz="$HZ" 'BEGIN { printf "%.0f", (n > 0 ? (b - a) * 1e6 / hz / n : 0) }')
  echo "RESULT $NAME mode=$mode calls=$CALLS conc=$CONC successful=$ok failed=$failed calls_per_s=$rate payee_cpu_us_per_call=$cpu randpay_process_cpu_us_per_call=$mcpu payer_cpu_us_per_call=$pcpu node_cpu_us_per_call=$dcpu"
  RATE[$mode]=$rate
  if [ "$mode" != plain ]; then
    ledger_calls=$(kamcmd -s "unix:$WORK/payee-$mode/ctl" randpay.ledger | grep -c "call_id:" || true)
    echo "# payee ledger lists $ledger_calls recent call(s) (randpay.ledger shows the last 50)" >&2
  fi
  stop_kams
done

awk -v a="${RATE[randpay]:-0}" -v b="${RATE[plain]:-0}" -v c="${RATE[402]:-0}" 'BEGIN {
  printf "\n%s: payee with randpay_require %.1f calls/s, without %.1f calls/s: ratio %.2fx (goal >= 0.80x)\n", "'$NAME'", a, b, (b > 0 ? a / b : 0)
  if (c > 0) printf "%s: metered the 402 way (no side channel) %.1f calls/s: ratio %.2fx\n", "'$NAME'", c, (b > 0 ? c / b : 0)
}'

[ "${HOLD:-1}" = 1 ] || exit 0
# Node calls per metered call-minute.
counts() { rpc "" devnet_rpccount '[]' | python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print(sum(r.values()), sum(v for k,v in r.items() if k.startswith("randpay_")))'; }
start_pair hold "$ROOT/dialplan/kamailio/randpay-payee.cfg" "+ 0.01 risk=10 interval=20 grace=5"
read -r all0 rp0 < <(counts)
port=$(free_port)
sipp -sf "$ROOT/tests/sipp/uac_hold.xml" "127.0.0.1:$PAYER_PORT" -s +4930123456 -r "$HOLD_CALLS" -l "$HOLD_CALLS" -m "$HOLD_CALLS" \
  -d "$((HOLD_SECS * 1000))" -i 127.0.0.1 -p "$port" -nostdin -timeout $((HOLD_SECS + 60)) \
  -trace_screen -screen_file "$WORK/hold.screen" >/dev/null 2>&1 || true
read -r all1 rp1 < <(counts)
held_ok=$(grep "Successful call" "$WORK/hold.screen" | tail -1 | awk '{print $NF}' || echo 0)
stop_kams
minutes=$(awk -v n="${held_ok:-0}" -v s="$HOLD_SECS" 'BEGIN { printf "%.2f", n * s / 60 }')
echo "RESULT $NAME mode=hold calls=$HOLD_CALLS held_ok=$held_ok secs=$HOLD_SECS interval=20 call_minutes=$minutes node_rpc=$((all1 - all0)) randpay_rpc=$((rp1 - rp0))"

awk -v all=$((all1 - all0)) -v m="$minutes" 'BEGIN {
  if (m > 0) printf "%s: %.1f node RPC calls per metered call-minute at a 20 s interval: 3 per interval (mkchap, mktx, accept), nothing else\n", "'$NAME'", all / m
}'
echo "# logs: $WORK" >&2
