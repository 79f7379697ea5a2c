#!/usr/bin/env bash
# asterisk-module.sh — EMC_ENUM (res_privateness.so, cache hits) against Asterisk's built-in
# ENUMLOOKUP (func_enum, resolving the same records from nsd on 127.0.0.x:53), in one real
# Asterisk, with the same dialplan shape, one invocation. Needs ASTERISK_PREFIX (an installed
# Asterisk 20 or 22 with pbx_config, res_clioriginate, app_system, app_while, func_enum,
# func_strings); Asterisk is not packaged in Debian, so this is not part of CI.
#
# The dialplan loops N times over 1000 numbers +1555000XXXX: Set(R=${FUNC(+1555000XXXX,sip)}).
# The same loop with Set(R=+1555000XXXX) (no function) measures the loop itself. Reported:
# evaluations per second of each loop, and the cost per evaluation net of the loop; the goal
# is EMC_ENUM >= 1.0x ENUMLOOKUP. The records are the same on both sides: nsd serves
# 100 10 "u" "E2U+sip" "!^.*$!sip:XXXX@127.0.0.1:5090!" for each number, and ness-devnet holds
# the same NAPTR in a signed enum:1555000XXXX:0 (a warm-up pass fills EMC_ENUM's cache; then
# every evaluation is a cache hit, which is what a PBX sees for numbers it calls often, as
# ENUMLOOKUP would see with a caching resolver in front of nsd).
#
# Run from the repository: ASTERISK_PREFIX=/opt/asterisk bench/asterisk-module.sh
set -euo pipefail

NAME=asterisk-module
N=${N:-20000}          # evaluations per loop
ROUNDS=${ROUNDS:-3}    # loops per mode (the best is kept)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${ASTERISK_PREFIX:?"set ASTERISK_PREFIX to an installed Asterisk 20 or 22"}
AST="$PREFIX/sbin/asterisk"
[ -x "$AST" ] || { echo "$NAME: $AST missing" >&2; exit 1; }
[ -f "$PREFIX/lib/asterisk/modules/func_enum.so" ] || { echo "$NAME: func_enum.so missing in $PREFIX" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt_ready=0
need() { # need <binary> <debian package>
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$apt_ready" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; apt_ready=1; fi
  apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || { echo "$NAME: cannot install $2" >&2; exit 1; }
}
need nsd nsd
need dig bind9-dnsutils
need unshare util-linux
need taskset util-linux
need ss iproute2

echo "# building res_privateness.so and ness-devnet (release)" >&2
(cd "$ROOT" && cargo build --release -q -p ness-asterisk-module -p ness-devnet)

W=$(mktemp -d /tmp/bench-astenum.XXXXXX)
PIDS=()
AST_PID=
cleanup() {
  local p
  for p in $AST_PID "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $AST_PID "${PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ -z "${KEEP_WORKDIR:-}" ]; then rm -rf "$W"; else echo "workdir kept: $W" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Asterisk (the system under test) on the first CPU; nsd and the devnet on the second.
CPUS=()
IFS=, read -ra _parts <<< "$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status)"
for _p in "${_parts[@]}"; do
  if [[ $_p == *-* ]]; then for ((c = ${_p%-*}; c <= ${_p#*-}; c++)); do CPUS+=("$c"); done; else CPUS+=("$_p"); fi
done
PIN_SUT=(); PIN_GEN=()
if [ "${PIN:-1}" = 1 ] && [ "${#CPUS[@]}" -ge 2 ]; then
  PIN_SUT=(taskset -c "${CPUS[0]}"); PIN_GEN=(taskset -c "${CPUS[1]}")
fi
udp_busy() { ss -Hlun 2>/dev/null | awk '{print $4}' | grep -qE "^(\\*|0\\.0\\.0\\.0|\\[::\\]|$1):$2\$"; }

# ---------------------------------------------------------------- nsd with the numbers
DNS_IP=
for cand in 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7; do
  udp_busy "$cand" 53 && continue
  DNS_IP=$cand
  awk -v dnsip="$DNS_IP" 'BEGIN {
    printf "$ORIGIN e164.arpa.\n$TTL 300\n@ IN SOA ns.e164.arpa. hostmaster.e164.arpa. 1 3600 600 86400 300\n@ IN NS ns.e164.arpa.\nns IN A %s\n", dnsip
    for (i = 0; i < 1000; i++) {
      x = sprintf("%04d", i); d = "1555000" x; o = ""
      for (k = length(d); k >= 1; k--) o = o substr(d, k, 1) (k > 1 ? "." : "")
      printf "%s IN NAPTR 100 10 \"u\" \"E2U+sip\" \"!^.*$!sip:%s@127.0.0.1:5090!\" .\n", o, x
    }
  }' > "$W/e164.arpa.zone"
  cat > "$W/nsd.conf" <<EOF
server:
  ip-address: $DNS_IP
  port: 53
  do-ip6: no
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "$W"
  database: ""
  zonelistfile: "$W/zone.list"
  xfrdfile: "$W/xfrd.state"
  xfrdir: "$W"
  pidfile: "$W/nsd.pid"
  logfile: "$W/nsd.log"
  verbosity: 0
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "e164.arpa"
  zonefile: "e164.arpa.zone"
EOF
  "${PIN_GEN[@]}" nsd -d -c "$W/nsd.conf" >"$W/nsd.out" 2>&1 &
  NSD_PID=$!
  ok=0
  for _ in $(seq 1 50); do
    if dig +time=1 +tries=1 @"$DNS_IP" NAPTR 0.0.0.0.0.0.0.5.5.5.1.e164.arpa +short 2>/dev/null | grep -q 'sip:0000@'; then ok=1; break; fi
    kill -0 "$NSD_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$ok" = 1 ]; then PIDS+=("$NSD_PID"); break; fi
  kill "$NSD_PID" 2>/dev/null || true; wait "$NSD_PID" 2>/dev/null || true
  DNS_IP=
done
[ -n "$DNS_IP" ] || { echo "$NAME: could not start nsd on any 127.0.0.x:53" >&2; exit 1; }
printf 'nameserver %s\noptions timeout:1 attempts:1\n' "$DNS_IP" > "$W/resolv.conf"

# ---------------------------------------------------------------- devnet with the same records
NESS_DEVNET_RPCPASSWORD=bench "${PIN_GEN[@]}" "$ROOT/target/release/ness-devnet" --listen 127.0.0.1:0 \
  --rpcuser bench --seed-demo --seed-numbers 1000 >"$W/devnet.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do grep -q "ready" "$W/devnet.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$W/devnet.log" || { cat "$W/devnet.log" >&2; exit 1; }
NODE=$(grep -o 'JSON-RPC on http://[0-9.:]*/' "$W/devnet.log" | awk '{print $3}')

# ---------------------------------------------------------------- a private Asterisk
mkdir -p "$W/etc" "$W/mods" "$W/run/db" "$W/run/spool" "$W/run/log"
: > "$W/run/out.txt"
for m in "$PREFIX"/lib/asterisk/modules/*.so; do ln -s "$m" "$W/mods/"; done
cp "$ROOT/target/release/libres_privateness.so" "$W/mods/res_privateness.so"
V="$PREFIX/var/lib/asterisk"
cat > "$W/etc/asterisk.conf" <<EOF
[directories]
astetcdir => $W/etc
astmoddir => $W/mods
astvarlibdir => $V
astdbdir => $W/run/db
astkeydir => $V
astdatadir => $V
astagidir => $V/agi-bin
astspooldir => $W/run/spool
astrundir => $W/run
astlogdir => $W/run/log
astsbindir => $PREFIX/sbin
[options]
verbose = 0
debug = 0
nocolor = yes
EOF
cat > "$W/etc/modules.conf" <<EOF
[modules]
autoload = no
load => pbx_config.so
load => res_clioriginate.so
load => app_system.so
load => app_while.so
load => func_strings.so
load => func_enum.so
load => res_privateness.so
EOF
printf '[general]\n[logfiles]\nmessages.log => notice,warning,error\n' > "$W/etc/logger.conf"
printf '[general]\nnode_url = %s\nrpc_user = bench\nrpc_password = bench\n' "$NODE" > "$W/etc/privateness.conf"
loop() { # loop <context> <expression for R, with X = the 4-digit suffix>
  cat <<EOF
[$1]
exten => s,1,Set(i=0)
 same => n,Set(T0=\${STRFTIME(,,%s.%6q)})
 same => n,While(\$[\${i} < \${N}])
 same => n,Set(X=\$[\${i} % 1000 + 10000])
 same => n,Set(R=$2)
 same => n,Set(i=\$[\${i} + 1])
 same => n,EndWhile()
 same => n,Set(T1=\${STRFTIME(,,%s.%6q)})
 same => n,System(echo "$1 \${N} \${T0} \${T1} \${R}" >> $W/run/out.txt)
 same => n,Hangup()

EOF
}
{
  printf '[general]\nstatic = yes\nwriteprotect = yes\n\n'
  loop empty '+1555000${X:1}'
  loop emc '${EMC_ENUM(+1555000${X:1},sip)}'
  loop dns '${ENUMLOOKUP(+1555000${X:1},sip)}'
} > "$W/etc/extensions.conf"

A=("$AST" -C "$W/etc/asterisk.conf")
# ENUMLOOKUP reads /etc/resolv.conf: give Asterisk (only) one pointing at nsd.
"${PIN_SUT[@]}" unshare -m --propagation private -- /bin/sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh \
  "$W/resolv.conf" "${A[@]}" -f -n </dev/null >"$W/asterisk.out" 2>&1 &
for _ in $(seq 1 120); do "${A[@]}" -rx "core waitfullybooted" 2>/dev/null | grep -q "fully booted" && break; sleep 0.5; done
AST_PID=$(cat "$W/run/asterisk.pid")
"${A[@]}" -rx "core show version" | head -1 >&2
echo "# asterisk pid $AST_PID on [${PIN_SUT[*]:-any}]; nsd $DNS_IP:53 and ness-devnet $NODE on [${PIN_GEN[*]:-any}]" >&2

run_loop() { # run_loop <context> <N> → prints "<seconds> <last R>"
  local before after
  before=$(wc -l < "$W/run/out.txt" 2>/dev/null || echo 0)
  "${A[@]}" -rx "channel originate Local/s@$1 application Wait 3600" >/dev/null
  "${A[@]}" -rx "dialplan set global N $2" >/dev/null
  for _ in $(seq 1 12000); do
    after=$(wc -l < "$W/run/out.txt" 2>/dev/null || echo 0)
    [ "$after" -gt "$before" ] && break
    sleep 0.01
  done
  tail -1 "$W/run/out.txt" | awk -v ctx="$1" '$1 == ctx { printf "%.6f %s\n", $4 - $3, $5 }'
}
"${A[@]}" -rx "dialplan set global N 1000" >/dev/null

# Check that both functions give the same answers, and warm EMC_ENUM's cache (1000 numbers).
for ctx in emc dns; do
  "${A[@]}" -rx "dialplan set global N 1000" >/dev/null
  r=$(run_loop "$ctx" 1000)
  [ "$(echo "$r" | awk '{print $2}')" = "0999@127.0.0.1:5090" ] || { echo "$NAME: $ctx gave '$r' for +15550000999" >&2; exit 1; }
done
for x in 0000 0500; do
  e=$("${A[@]}" -rx "dialplan eval function EMC_ENUM(+1555000$x,sip)" | awk '/Result/ {print $2}')
  d=$("${A[@]}" -rx "dialplan eval function ENUMLOOKUP(+1555000$x,sip)" | awk '/Result/ {print $2}')
  [ "$e" = "$d" ] && [ -n "$e" ] || { echo "$NAME: +1555000$x: EMC_ENUM '$e' vs ENUMLOOKUP '$d'" >&2; exit 1; }
done
echo "# both give the same URIs (e.g. $e); EMC_ENUM cache warm" >&2

declare -A BEST
for ctx in empty emc dns; do
  best=
  for r in $(seq 1 "$ROUNDS"); do
    "${A[@]}" -rx "dialplan set global N $N" >/dev/null
    t=$(run_loop "$ctx" "$N" | awk '{print $1}')
    echo "# $ctx round $r: $N evaluations in $t s" >&2
    if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$t; fi
  done
  BEST[$ctx]=$best
  awk -v c="$ctx" -v n="$N" -v t="$best" 'BEGIN { printf "RESULT mode=%s evaluations=%d seconds=%.3f per_s=%.0f us_per_eval=%.2f\n", c, n, t, n / t, t / n * 1e6 }'
done
status=$("${A[@]}" -rx "privateness show status" | grep Counters)
echo "# $status" >&2
awk -v n="$N" -v e="${BEST[empty]}" -v m="${BEST[emc]}" -v d="${BEST[dns]}" 'BEGIN {
  loop = e / n * 1e6; em = m / n * 1e6; dn = d / n * 1e6
  printf "loop alone: %.2f us per iteration\n", loop
  printf "EMC_ENUM:   %.0f evaluations/s (%.2f us each, %.2f us net of the loop)\n", n / m, em, em - loop
  printf "ENUMLOOKUP: %.0f evaluations/s (%.2f us each, %.2f us net of the loop)\n", n / d, dn, dn - loop
  printf "RATIO EMC_ENUM/ENUMLOOKUP evaluations per second: %.2fx (goal >= 1.0x)\n", (n / m) / (n / d)
  if (em - loop > 0) printf "RATIO net cost per evaluation, ENUMLOOKUP/EMC_ENUM: %.1fx\n", (dn - loop) / (em - loop)
}'
