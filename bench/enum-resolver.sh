#!/usr/bin/env bash
# enum-resolver.sh — ness-enum-resolver against named peers, measured in one run.
#
# What runs (loopback only; everything started here is stopped here, by PID):
#   * ness-devnet, seeded with 1000 signed numbers +1555000XXXX, one NAPTR each
#       100 10 "u" "E2U+sip" "!^.*$!sip:XXXX@127.0.0.1:5090!" .
#     (the records of shared/bench/kamailio-enum-anchor.sh);
#   * ness-enum-resolver (release build), DNS on $OURS_IP:$PORT, HTTP on 127.0.0.1:$HTTP_PORT;
#   * nsd (Debian), authoritative for e164.arpa with the same 1000 NAPTRs, on $NSD_IP:$PORT;
#   * nginx (Debian), one worker, serving the resolver's JSON reply for one number as a
#     static file of the same size;
#   * dnsperf and wrk (Debian) as load generators.
#
# DNS: both servers get one CPU (taskset), dnsperf the other. The cache is warmed first,
#   so this measures cache hits (the goal: >= 1.0x nsd). A throughput run (unlimited rate,
#   -q outstanding queries) gives queries/s; a latency run at a fixed rate both servers
#   sustain gives p50/p99 from dnsperf's per-query output.
# HTTP: /enum/lookup on a cached number against nginx's static reply, wrk with
#   --latency, both servers on one CPU (goal: >= 0.5x nginx).
#
# Prints "RESULT <name> <value>" lines and the ratios. Absolute figures are noisy on a
# shared 2-core machine; the ratios of one run are what to compare.
set -euo pipefail

NAME=enum-resolver-bench
PORT=${PORT:-15353}
HTTP_PORT=${HTTP_PORT:-18480}
NGINX_PORT=${NGINX_PORT:-18481}
DNS_SECS=${DNS_SECS:-10}
LAT_QPS=${LAT_QPS:-20000}
LAT_SECS=${LAT_SECS:-5}
OUTSTANDING=${OUTSTANDING:-200}
HTTP_SECS=${HTTP_SECS:-10}
HTTP_CONNS=${HTTP_CONNS:-64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

export DEBIAN_FRONTEND=noninteractive
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
apt_ready=0
need() { # need <binary> <debian package>
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$apt_ready" = 0 ]; then $SUDO apt-get update -qq >/dev/null 2>&1 || true; apt_ready=1; fi
  $SUDO apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || { echo "$NAME: cannot install $2" >&2; exit 1; }
}
need nsd nsd
need dnsperf dnsperf
need wrk wrk
need nginx nginx-light
need dig bind9-dnsutils
need taskset util-linux
need curl curl

echo "# building release binaries" >&2
(cd "$ROOT" && cargo build --release -q -p ness-devnet -p ness-enum-resolver)
BIN=$ROOT/target/release

W=$(mktemp -d /tmp/bench-enumres.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORKDIR:-}" ] && echo "workdir kept: $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CPUS=()
IFS=, read -ra _parts <<< "$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status)"
for _p in "${_parts[@]}"; do
  if [[ $_p == *-* ]]; then for ((c = ${_p%-*}; c <= ${_p#*-}; c++)); do CPUS+=("$c"); done; else CPUS+=("$_p"); fi
done
PIN_SUT=(); PIN_GEN=()
if [ "${PIN:-1}" = 1 ] && [ "${#CPUS[@]}" -ge 2 ]; then
  PIN_SUT=(taskset -c "${CPUS[0]}"); PIN_GEN=(taskset -c "${CPUS[1]}")
fi
echo "# cpus: servers on [${PIN_SUT[*]:-any}], load generators on [${PIN_GEN[*]:-any}]" >&2

wait_line() { # wait_line <file> <pattern> <seconds>
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -aq "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$NAME: '$2' not seen in $1:" >&2; cat "$1" >&2; exit 1
}

# ---------------------------------------------------------------- devnet + resolver
"$BIN/ness-devnet" --listen 127.0.0.1:0 --rpcuser bench --rpcpassword bench --seed-demo --seed-numbers 1000 >"$W/devnet.log" 2>&1 &
PIDS+=($!)
wait_line "$W/devnet.log" "ness-devnet: ready" 300
NODE_URL=$(grep -ao 'JSON-RPC on http://[0-9.:]*/' "$W/devnet.log" | head -1 | sed 's/JSON-RPC on //')

OURS_IP=127.0.0.3
NSD_IP=127.0.0.2
cat > "$W/resolver.toml" <<EOF
[node]
url = "$NODE_URL"
user = "bench"
password = "bench"
[resolver]
ttl_cap_secs = 3600
[http]
listen = "127.0.0.1:$HTTP_PORT"
[dns]
listen = ["$OURS_IP:$PORT"]
udp_sockets = 1
EOF
chmod 600 "$W/resolver.toml"
RUST_LOG=warn "${PIN_SUT[@]}" "$BIN/ness-enum-resolver" --config "$W/resolver.toml" >"$W/resolver.log" 2>&1 &
OURS_PID=$!
PIDS+=($!)
wait_line "$W/resolver.log" "DNS on" 20

# ---------------------------------------------------------------- nsd with the same records
{
  printf '$ORIGIN e164.arpa.\n$TTL 300\n@ IN SOA ns.e164.arpa. hostmaster.e164.arpa. 1 3600 600 86400 30\n@ IN NS ns.e164.arpa.\nns IN A %s\n' "$NSD_IP"
  for i in $(seq 0 999); do
    x=$(printf '%04d' "$i"); d="1555000$x"; o=$(echo "$d" | rev | sed 's/./&./g; s/\.$//')
    printf '%s IN NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:%s@127.0.0.1:5090!" .\n' "$o" "$x"
  done
} > "$W/e164.arpa.zone"
cat > "$W/nsd.conf" <<EOF
server:
  ip-address: $NSD_IP
  port: $PORT
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
  hide-version: yes
remote-control:
  control-enable: no
zone:
  name: "e164.arpa"
  zonefile: "e164.arpa.zone"
EOF
nsd-checkconf "$W/nsd.conf"
"${PIN_SUT[@]}" nsd -d -c "$W/nsd.conf" >"$W/nsd.out" 2>&1 &
NSD_PID=$!
PIDS+=($!)

for i in $(seq 0 999); do
  printf '%s.e164.arpa NAPTR\n' "$(printf '1555000%04d' "$i" | rev | sed 's/./&./g; s/\.$//')"
done > "$W/queries"

# Same answer from both (and nsd up).
for _ in $(seq 1 50); do dig +time=1 +tries=1 @"$NSD_IP" -p "$PORT" NAPTR 7.4.0.0.0.0.0.5.5.5.1.e164.arpa +short 2>/dev/null | grep -q sip: && break; sleep 0.1; done
a=$(dig +short @"$NSD_IP" -p "$PORT" NAPTR 7.4.0.0.0.0.0.5.5.5.1.e164.arpa)
b=$(dig +short @"$OURS_IP" -p "$PORT" NAPTR 7.4.0.0.0.0.0.5.5.5.1.e164.arpa)
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "$NAME: answers differ: nsd [$a] ours [$b]" >&2; exit 1; }

# Warm our cache: every number once.
"${PIN_GEN[@]}" dnsperf -s "$OURS_IP" -p "$PORT" -d "$W/queries" -n 1 -q 50 >/dev/null 2>&1

# A process and all its descendants (nsd forks twice: xfrd -> main -> server).
family() { local p; for p in "$@"; do echo "$p"; family $(pgrep -P "$p" 2>/dev/null || true); done; }
# CPU time (clock ticks) of processes and their descendants, from /proc.
cpu_ticks() { # cpu_ticks <pid>...
  local t=0 p
  for p in $(family "$@"); do
    [ -r "/proc/$p/stat" ] || continue
    t=$(( t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }') ))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
dns_tp() { # dns_tp <ip> <server pid> -> "queries/s cpu_us_per_query"
  local c0 c1 qps n
  c0=$(cpu_ticks "$2")
  "${PIN_GEN[@]}" dnsperf -s "$1" -p "$PORT" -d "$W/queries" -l "$DNS_SECS" -q "$OUTSTANDING" -c 4 >"$W/dnsperf-$1.out" 2>&1
  c1=$(cpu_ticks "$2")
  qps=$(awk '/Queries per second/ { print $4 }' "$W/dnsperf-$1.out")
  n=$(awk '/Queries completed/ { print $3 }' "$W/dnsperf-$1.out")
  awk -v q="$qps" -v n="$n" -v t=$((c1 - c0)) -v hz="$HZ" 'BEGIN { printf "%s %.2f\n", q, (n > 0 ? t / hz * 1e6 / n : 0) }'
}
dns_lat() { # dns_lat <ip> -> "p50_us p99_us"
  "${PIN_GEN[@]}" dnsperf -v -s "$1" -p "$PORT" -d "$W/queries" -l "$LAT_SECS" -Q "$LAT_QPS" -q "$OUTSTANDING" 2>/dev/null |
    awk '$1 == ">" && $2 == "NOERROR" { print $NF * 1000000 }' | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan nan"; exit } printf "%.0f %.0f\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1] }'
}
lost() { awk '/Queries lost/ { print $3 }' "$W/dnsperf-$1.out"; }

echo "# DNS throughput: dnsperf ${DNS_SECS}s, $OUTSTANDING outstanding, 1000 names (cache hits)" >&2
read -r NSD_QPS NSD_CPU <<< "$(dns_tp "$NSD_IP" "$NSD_PID")"
read -r OURS_QPS OURS_CPU <<< "$(dns_tp "$OURS_IP" "$OURS_PID")"
echo "# DNS latency: dnsperf ${LAT_SECS}s at $LAT_QPS queries/s" >&2
read -r NSD_P50 NSD_P99 <<< "$(dns_lat "$NSD_IP")"
read -r OURS_P50 OURS_P99 <<< "$(dns_lat "$OURS_IP")"

# ---------------------------------------------------------------- HTTP against nginx
URL="http://127.0.0.1:$HTTP_PORT/enum/lookup?number=%2B15550000047"
curl -fsS "$URL" > "$W/reply.json"
curl -fsS "$URL" > "$W/reply.json"   # second time: "source":"cache", the body wrk will see
mkdir -p "$W/www/enum" "$W/nginx"
cp "$W/reply.json" "$W/www/enum/lookup"
# nginx workers run as an unprivileged user: let them read the static reply.
chmod 755 "$W" "$W/www" "$W/www/enum"; chmod 644 "$W/www/enum/lookup"
cat > "$W/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $W/nginx; proxy_temp_path $W/nginx; fastcgi_temp_path $W/nginx;
  uwsgi_temp_path $W/nginx; scgi_temp_path $W/nginx;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = /enum/lookup { root $W/www; default_type application/json; }
  }
}
EOF
"${PIN_SUT[@]}" nginx -c "$W/nginx.conf" -p "$W" >"$W/nginx.out" 2>&1 &
NGINX_PID=$!
PIDS+=($!)
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$NGINX_PORT/enum/lookup?number=%2B15550000047" >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(curl -fsS "http://127.0.0.1:$NGINX_PORT/enum/lookup?number=%2B15550000047" | wc -c)" = "$(wc -c < "$W/reply.json")" ] || { echo "$NAME: nginx reply size differs" >&2; exit 1; }

http_run() { # http_run <url> <label> <server pid> -> "rps p99_us cpu_us_per_request"
  local c0 c1
  c0=$(cpu_ticks "$3")
  "${PIN_GEN[@]}" wrk -t1 -c"$HTTP_CONNS" -d"${HTTP_SECS}s" --latency "$1" >"$W/wrk.$2.out" 2>&1
  c1=$(cpu_ticks "$3")
  awk -v t=$((c1 - c0)) -v hz="$HZ" '/requests in/ { n = $1 }
       /Requests\/sec/ { rps = $2 }
       $1 == "99%" { v = $2; m = 1; if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000; sub(/[a-z]+$/, "", v); p99 = v * m }
       END { printf "%.0f %.0f %.2f\n", rps, p99, (n > 0 ? t / hz * 1e6 / n : 0) }' "$W/wrk.$2.out"
}
echo "# HTTP: wrk ${HTTP_SECS}s, $HTTP_CONNS connections, $(wc -c < "$W/reply.json")-byte JSON reply" >&2
read -r NGINX_RPS NGINX_P99 NGINX_CPU <<< "$(http_run "http://127.0.0.1:$NGINX_PORT/enum/lookup?number=%2B15550000047" nginx "$NGINX_PID")"
read -r OURS_RPS OURS_HP99 OURS_HCPU <<< "$(http_run "$URL" ours "$OURS_PID")"
grep -q "Non-2xx" "$W/wrk.ours.out" && { echo "$NAME: non-2xx replies from the resolver" >&2; exit 1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
echo "RESULT dns_nsd_qps $NSD_QPS"
echo "RESULT dns_ours_qps $OURS_QPS"
echo "RESULT dns_nsd_lost $(lost "$NSD_IP")"
echo "RESULT dns_ours_lost $(lost "$OURS_IP")"
echo "RESULT dns_qps_ratio_ours_vs_nsd $(ratio "$OURS_QPS" "$NSD_QPS")"
echo "RESULT dns_nsd_cpu_us_per_query $NSD_CPU"
echo "RESULT dns_ours_cpu_us_per_query $OURS_CPU"
echo "RESULT dns_cpu_ratio_nsd_vs_ours $(ratio "$NSD_CPU" "$OURS_CPU")  (above 1: we use less CPU per query)"
echo "RESULT dns_nsd_p50_us $NSD_P50"
echo "RESULT dns_nsd_p99_us $NSD_P99"
echo "RESULT dns_ours_p50_us $OURS_P50"
echo "RESULT dns_ours_p99_us $OURS_P99"
echo "RESULT http_nginx_rps $NGINX_RPS"
echo "RESULT http_ours_rps $OURS_RPS"
echo "RESULT http_rps_ratio_ours_vs_nginx $(ratio "$OURS_RPS" "$NGINX_RPS")"
echo "RESULT http_nginx_cpu_us_per_request $NGINX_CPU"
echo "RESULT http_ours_cpu_us_per_request $OURS_HCPU"
echo "RESULT http_nginx_p99_us $NGINX_P99"
echo "RESULT http_ours_p99_us $OURS_HP99"
