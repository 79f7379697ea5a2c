#!/usr/bin/env bash
# kamailio-module.sh — privateness.so (emc_enum_query) against Kamailio's stock `enum` module
# (enum_query with nsd), same Kamailio config, same workers, same SIPp load, one invocation.
#
# Derived from shared/bench/kamailio-enum-anchor.sh (the anchor measurement of the stock
# module): same zones, numbers, SIPp scenarios, pinning, tuning and accounting; modes added:
#   emc_hit  : emc_enum_query() with every number in the per-process caches (a warm-up pass
#              first) — the goal is >= 1.0x the stock module's calls/s and CPU per call;
#   emc_miss : emc_enum_query() with answers not cached (ttl_cap 0), so every call reads the
#              node: name_show of enum:<digits>:0 and :1 (together), then the SRL bucket (no
#              revocation list is kept either when ttl_cap is 0). Signature outcomes are
#              remembered (a warm-up pass first), as when a PBX's cached answers expire — the
#              goal is a latency no worse than 2x the stock module's (which has no cache:
#              every call is a DNS query to nsd);
#   emc_cold : emc_enum_query() with numbers never seen before (each step takes fresh ones):
#              every call also checks the record's signature (secp256k1 key recovery).
#   emc_hook : emc_hit with the Lua on_enum hook of bench/lua/on_enum-20.lua (20 lines: a
#              blocklist, a pass over the routes) run on every call — the goal is >= 0.9x
#              emc_hit's calls/s; the hook's own latency (p50/p99, in-process, µs) is
#              printed too (tests/src/bin/hook_latency.rs).
# The node is ness-devnet (release build), seeded with numbers +1555000XXXX (the first 1000 are
# the zone's numbers), one signed NAPTR each (100 10 "u" "E2U+sip" "!^.*$!sip:XXXX@127.0.0.1:5090!"),
# pinned with the load generators like nsd.
# Response times: SIPp's (whole milliseconds) under load, and sip-probe.py's (microseconds):
# one call at a time, every PROBE_INTERVAL_MS, during the latency run.
#
# Run from the repository: bench/kamailio-module.sh   (MODES="enum1 emc_hit" to choose)
# Prints RESULT lines and the ratios at the end.
set -euo pipefail

NAME=kamailio-module
KAM_PORT=${KAM_PORT:-15060}
UAS_PORT=5090            # fixed by the zone contents
UAC_PORT=${UAC_PORT:-15061}
LAT_CPS=${LAT_CPS:-1000}            # open-loop rate of the latency run
LAT_SECS=${LAT_SECS:-4}
CONC=${CONC:-128}                  # calls in flight during the throughput run
CAL_CALLS=${CAL_CALLS:-2000}       # calibration run size
TP_SECS=${TP_SECS:-10}              # approximate length of the throughput run
STEP_SEARCH=${STEP_SEARCH:-0}      # 1: also step the open-loop rate (adds ~40 s per mode)
STEP_SECS=${STEP_SECS:-4}
START_CPS=${START_CPS:-}
MAX_CPS=${MAX_CPS:-50000}
MAX_STEPS=${MAX_STEPS:-8}          # per mode, including the refinement steps
REFINE=${REFINE:-2}                # bisection steps after the first failing rate
MODES=${MODES:-"static enum1 emc_hit emc_miss emc_cold"}
PROBE_INTERVAL_MS=${PROBE_INTERVAL_MS:-10}
COLD_NUMBERS=${COLD_NUMBERS:-60000}  # devnet numbers when emc_cold runs (seeding: ~1 min per 100 000)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KAM_MODDIR=${KAM_MODDIR:-/usr/lib/x86_64-linux-gnu/kamailio/modules}
# shm allocator: tlsf. Debian's build defaults to qm (debug-friendly), which here costs ~4x the CPU
# per call (~390 vs ~90 us) and would hide the cost of the lookup; KAM_SHM_MANAGER=qm restores it.
KAM_SHM_MANAGER=${KAM_SHM_MANAGER:-tlsf}
KAM_SHM_MB=${KAM_SHM_MB:-2048}     # tm keeps finished transactions ~5 s: thousands of calls/s need room

export DEBIAN_FRONTEND=noninteractive
apt_ready=0
need() { # need <binary> <debian package>
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$apt_ready" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; apt_ready=1; fi
  apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || { echo "$NAME: cannot install $2" >&2; exit 1; }
}
need kamailio kamailio
need sipp sip-tester
need nsd nsd
need dig bind9-dnsutils
need unshare util-linux
need taskset util-linux
need ss iproute2
need pgrep procps
need python3 python3
need kamcmd kamailio
[ -f "$KAM_MODDIR/enum.so" ] || { echo "$NAME: $KAM_MODDIR/enum.so missing" >&2; exit 1; }
echo "# building privateness.so and ness-devnet (release)" >&2
(cd "$ROOT" && cargo build --release -q -p ness-kamailio-module -p ness-devnet && cargo build --release -q -p ness-tests --bin hook_latency)
MODULE="$ROOT/target/release/libprivateness.so"

W=$(mktemp -d /tmp/bench-kamenum.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ -z "${KEEP_WORKDIR:-}" ]; then rm -rf "$W"; else echo "workdir kept: $W" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU pinning: on a machine with >= 2 CPUs kamailio (the system under test) gets the first allowed
# CPU to itself; SIPp UAC+UAS and nsd (the load generator and the "network") share the second.
# Without this, SIPp and kamailio fight over both cores and the lookup cost is hidden by the
# load generator's own limits. PIN=0 disables it.
CPUS=()
IFS=, read -ra _parts <<< "$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status)"
for _p in "${_parts[@]}"; do
  if [[ $_p == *-* ]]; then for ((c = ${_p%-*}; c <= ${_p#*-}; c++)); do CPUS+=("$c"); done; else CPUS+=("$_p"); fi
done
PIN_SUT=(); PIN_GEN=()
if [ "${PIN:-1}" = 1 ] && [ "${#CPUS[@]}" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
  PIN_SUT=(taskset -c "${CPUS[0]}"); PIN_GEN=(taskset -c "${CPUS[1]}")
fi

udp_busy() { ss -Hlun 2>/dev/null | awk '{print $4}' | grep -qE "^(\\*|0\\.0\\.0\\.0|\\[::\\]|$1):$2\$"; }
for p in "$KAM_PORT" "$UAS_PORT" "$UAC_PORT"; do
  if udp_busy 127.0.0.1 "$p"; then echo "$NAME: UDP 127.0.0.1:$p is busy" >&2; exit 1; fi
done

# ---------------------------------------------------------------- zones, numbers, nsd
gen_zone() { # gen_zone <origin> <records-per-number>
  awk -v origin="$1" -v nrec="$2" -v dnsip="$DNS_IP" 'BEGIN {
    printf "$ORIGIN %s.\n$TTL 300\n", origin
    printf "@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n@ IN NS ns.%s.\nns IN A %s\n", origin, origin, origin, dnsip
    for (i = 0; i < 1000; i++) {
      x = sprintf("%04d", i); d = "1555000" x; o = ""
      for (k = length(d); k >= 1; k--) o = o substr(d, k, 1) (k > 1 ? "." : "")
      printf "%s IN NAPTR 100 10 \"u\" \"E2U+sip\" \"!^.*$!sip:%s@127.0.0.1:5090!\" .\n", o, x
      if (nrec > 1) printf "%s IN NAPTR 200 10 \"u\" \"E2U+sip\" \"!^.*$!sip:%s@127.0.0.1:5091!\" .\n", o, x
    }
  }'
}
{ echo RANDOM; for i in $(seq 0 999); do printf '+1555000%04d\n' "$i"; done; } > "$W/numbers.csv"

DNS_IP=
for cand in 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7; do
  udp_busy "$cand" 53 && continue
  DNS_IP=$cand
  gen_zone e164.arpa 1 > "$W/e164.arpa.zone"
  gen_zone e164.bench 2 > "$W/e164.bench.zone"
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
  hide-version: yes
remote-control:
  control-enable: yes
  control-interface: $W/nsd.ctl
zone:
  name: "e164.arpa"
  zonefile: "e164.arpa.zone"
zone:
  name: "e164.bench"
  zonefile: "e164.bench.zone"
EOF
  nsd-checkconf "$W/nsd.conf"
  "${PIN_GEN[@]}" nsd -d -c "$W/nsd.conf" >"$W/nsd.out" 2>&1 &
  NSD_PID=$!
  ok=0
  for _ in $(seq 1 50); do
    if dig +time=1 +tries=1 @"$DNS_IP" -p 53 NAPTR 0.0.0.0.0.0.0.5.5.5.1.e164.arpa +short 2>/dev/null | grep -q 'sip:0000@'; then ok=1; break; fi
    kill -0 "$NSD_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$ok" = 1 ]; then PIDS+=("$NSD_PID"); break; fi
  kill "$NSD_PID" 2>/dev/null || true; wait "$NSD_PID" 2>/dev/null || true
  DNS_IP=
done
[ -n "$DNS_IP" ] || { echo "$NAME: could not start nsd on any 127.0.0.x:53" >&2; cat "$W/nsd.out" "$W/nsd.log" >&2 2>/dev/null; exit 1; }
[ "$(dig +short @"$DNS_IP" NAPTR 9.9.9.0.0.0.0.5.5.5.1.e164.bench | wc -l)" = 2 ] || { echo "$NAME: 2-record zone not served" >&2; exit 1; }
printf 'nameserver %s\noptions timeout:1 attempts:1\n' "$DNS_IP" > "$W/resolv.conf"
echo "# cpus: kamailio on [${PIN_SUT[*]:-any}], sipp+nsd on [${PIN_GEN[*]:-any}]" >&2
echo "# nsd on $DNS_IP:53 (pid $NSD_PID); zones e164.arpa (1 NAPTR/number), e164.bench (2 NAPTR/number)" >&2

# ---------------------------------------------------------------- devnet (the node for emc_* modes)
SEED=1000
[[ " $MODES " == *" emc_cold "* ]] && SEED=$COLD_NUMBERS
echo "# seeding the devnet with $SEED signed numbers" >&2
"${PIN_GEN[@]}" "$ROOT/target/release/ness-devnet" --listen 127.0.0.1:0 --rpcuser bench --rpcpassword bench \
  --seed-demo --seed-numbers "$SEED" >"$W/devnet.log" 2>&1 &
DEVNET_PID=$!; PIDS+=("$DEVNET_PID")
for _ in $(seq 1 9000); do grep -aq "ness-devnet: ready" "$W/devnet.log" 2>/dev/null && break; kill -0 "$DEVNET_PID" 2>/dev/null || break; sleep 0.1; done
grep -aq "ness-devnet: ready" "$W/devnet.log" || { echo "$NAME: devnet did not start" >&2; cat "$W/devnet.log" >&2; exit 1; }
NODE_URL=$(grep -ao 'JSON-RPC on http://[0-9.:]*/' "$W/devnet.log" | head -1 | sed 's/JSON-RPC on //')
echo "# devnet at $NODE_URL (pid $DEVNET_PID), $SEED signed numbers" >&2
{ echo SEQUENTIAL; for i in $(seq 0 999); do printf '+1555000%04d\n' "$i"; done; } > "$W/numbers-seq.csv"
# emc_cold: each step takes the next numbers from the seeded range, never used before.
COLD_NEXT=0
cold_numbers() { # cold_numbers <count> <file>: the next <count> unused numbers
  if [ $((COLD_NEXT + $1)) -gt "$SEED" ]; then echo "$NAME: emc_cold needs more than COLD_NUMBERS=$SEED numbers" >&2; exit 1; fi
  { echo SEQUENTIAL; seq -f '+1555%07g' "$COLD_NEXT" $((COLD_NEXT + $1 - 1)); } > "$2"
  COLD_NEXT=$((COLD_NEXT + $1))
}

# ---------------------------------------------------------------- SIPp scenario + UAS
cat > "$W/uac.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="enum-uac">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: ENUM benchmark
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
EOF

# SIPp's built-in uas scenario, plus [last_Record-Route:] so that ACK/BYE follow the proxy's route set,
# minus its 180 Ringing: kamailio's two workers may relay the 180 after the 200, and SIPp's UAC
# aborts a call on such a late provisional (a load-generator artefact, not a proxy failure).
{ sipp -sd uas || true; } | sed 's/^\( *\)\[last_Call-ID:\]/&\n\1[last_Record-Route:]/' \
  | awk '/<send>/ { buf = $0; inblk = 1; next }
         inblk { buf = buf "\n" $0; if (/<\/send>/) { if (buf !~ /180 Ringing/) print buf; inblk = 0 }; next }
         { print }' > "$W/uas.xml"
grep -q '180 Ringing' "$W/uas.xml" && { echo "$NAME: could not drop 180 from uas.xml" >&2; exit 1; }
grep -q 'last_Record-Route' "$W/uas.xml" || { echo "$NAME: could not derive uas.xml" >&2; exit 1; }
"${PIN_GEN[@]}" sipp -sf "$W/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -nostdin -max_recv_loops 10000 -buff_size 4194304 </dev/null >"$W/uas.out" 2>&1 &
UAS_PID=$!; PIDS+=("$UAS_PID")
for _ in $(seq 1 50); do udp_busy 127.0.0.1 "$UAS_PORT" && break; sleep 0.1; done
udp_busy 127.0.0.1 "$UAS_PORT" || { echo "$NAME: SIPp UAS did not start" >&2; cat "$W/uas.out" >&2; exit 1; }

# ---------------------------------------------------------------- kamailio
write_kamailio_cfg() { # write_kamailio_cfg <mode> <file>
  local route
  case "$1" in
    static) route='rewriteuri("sip:0000@127.0.0.1:5090");' ;;
    enum1)  route='if (!enum_query("e164.arpa.")) { sl_send_reply("404", "ENUM no match"); exit; }' ;;
    enum2)  route='if (!enum_query("e164.bench.")) { sl_send_reply("404", "ENUM no match"); exit; }' ;;
    emc_hit|emc_miss|emc_cold|emc_hook)
            route='if (!emc_enum_query()) { sl_send_reply("404", "ENUM no match"); exit; }' ;;
    *) echo "unknown mode $1" >&2; exit 1 ;;
  esac
  local extra=
  case "$1" in
    emc_hit)  extra="loadmodule \"$MODULE\"
modparam(\"privateness\", \"node_url\", \"$NODE_URL\")
modparam(\"privateness\", \"rpc_user\", \"bench\")
modparam(\"privateness\", \"rpc_password\", \"bench\")
modparam(\"privateness\", \"ttl_cap\", 3600)" ;;
    emc_hook) extra="loadmodule \"$MODULE\"
modparam(\"privateness\", \"node_url\", \"$NODE_URL\")
modparam(\"privateness\", \"rpc_user\", \"bench\")
modparam(\"privateness\", \"rpc_password\", \"bench\")
modparam(\"privateness\", \"ttl_cap\", 3600)
modparam(\"privateness\", \"hooks_script\", \"$ROOT/bench/lua/on_enum-20.lua\")" ;;
    emc_miss) extra="loadmodule \"$MODULE\"
modparam(\"privateness\", \"node_url\", \"$NODE_URL\")
modparam(\"privateness\", \"rpc_user\", \"bench\")
modparam(\"privateness\", \"rpc_password\", \"bench\")
modparam(\"privateness\", \"ttl_cap\", 0)" ;;
    emc_cold) extra="loadmodule \"$MODULE\"
modparam(\"privateness\", \"node_url\", \"$NODE_URL\")
modparam(\"privateness\", \"rpc_user\", \"bench\")
modparam(\"privateness\", \"rpc_password\", \"bench\")" ;;
  esac
  if [ -n "$extra" ]; then extra="$extra
loadmodule \"ctl.so\"
modparam(\"ctl\", \"binrpc\", \"unix:$W/run-$1/ctl\")"; fi
  cat > "$2" <<EOF
#!KAMAILIO
debug=0
log_stderror=yes
children=2
listen=udp:127.0.0.1:$KAM_PORT
disable_tcp=yes
maxbuffer=4194304
auto_aliases=no
alias="127.0.0.1:$KAM_PORT"
use_dns_cache=no
dns_try_naptr=no
dns_try_ipv6=no
dns_use_search_list=no
dns_retr_time=1
dns_retr_no=1
mpath="$KAM_MODDIR/"
loadmodule "pv.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "enum.so"
$extra
modparam("tm", "contacts_avp", "tm_contacts")
modparam("tm", "contact_flows_avp", "tm_contact_flows")
modparam("tm", "fr_timer", 2000)
modparam("tm", "fr_inv_timer", 4000)

request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (has_totag()) {
    if (loose_route()) { t_relay(); exit; }
    if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
    sl_send_reply("404", "Not here"); exit;
  }
  if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
  t_check_trans();
  if (!is_method("INVITE")) { sl_send_reply("405", "Method Not Allowed"); exit; }
  record_route();
  $route
  t_load_contacts();
  t_next_contacts();
  t_on_failure("NEXT");
  if (!t_relay()) { sl_reply_error(); }
  exit;
}

failure_route[NEXT] {
  if (t_is_canceled()) { exit; }
  if (t_next_contacts()) { t_on_failure("NEXT"); t_relay(); }
}
EOF
}

KAM_PID=
start_kamailio() { # start_kamailio <mode>
  local cfg="$W/kamailio-$1.cfg"
  write_kamailio_cfg "$1" "$cfg"
  mkdir -p "$W/run-$1"
  kamailio -c -f "$cfg" >"$W/kamailio-$1.check" 2>&1 || { echo "$NAME: cfg check failed" >&2; cat "$W/kamailio-$1.check" >&2; exit 1; }
  # private resolv.conf for kamailio only: new mount namespace, bind mount, exec kamailio
  "${PIN_SUT[@]}" unshare -m --propagation private -- /bin/sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh \
    "$W/resolv.conf" kamailio -DD -E -f "$cfg" -Y "$W/run-$1" -w "$W" -m "$KAM_SHM_MB" -M 16 -x "$KAM_SHM_MANAGER" </dev/null >"$W/kamailio-$1.log" 2>&1 &
  KAM_PID=$!; PIDS+=("$KAM_PID")
  for _ in $(seq 1 50); do udp_busy 127.0.0.1 "$KAM_PORT" && break; kill -0 "$KAM_PID" 2>/dev/null || break; sleep 0.1; done
  udp_busy 127.0.0.1 "$KAM_PORT" || { echo "$NAME: kamailio ($1) did not start" >&2; cat "$W/kamailio-$1.log" >&2; exit 1; }
  sleep 0.3
}
stop_kamailio() {
  [ -n "$KAM_PID" ] || return 0
  kill -TERM "$KAM_PID" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$KAM_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$KAM_PID" 2>/dev/null || true
  wait "$KAM_PID" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$KAM_PID" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
  KAM_PID=
  for _ in $(seq 1 30); do udp_busy 127.0.0.1 "$KAM_PORT" || break; sleep 0.1; done
}

# ---------------------------------------------------------------- one SIPp step
# run_step <tag> <rate> <calls> [max concurrent calls] -> prints "succ failed elapsed_s achieved_cps"
run_step() {
  local tag=$1 rate=$2 calls=$3 lim=${4:-$(($2 * 3 + 50))} d="$W/step-$1"
  rm -rf "$d"; mkdir -p "$d"
  ( cd "$d" && timeout $((STEP_SECS * 4 + 20)) "${PIN_GEN[@]}" sipp 127.0.0.1:"$KAM_PORT" -sf "$W/uac.xml" -inf "${INF:-$W/numbers.csv}" \
      -i 127.0.0.1 -p "$UAC_PORT" -r "$rate" -m "$calls" -l "$lim" -nostdin -buff_size 4194304 \
      -max_recv_loops 10000 -recv_timeout 4000 -timeout $((STEP_SECS * 4 + 10)) \
      -trace_stat -stf stat.csv -trace_rtt -rtt_freq 50 ${SIPP_EXTRA:-} </dev/null >sipp.out 2>&1 ) || true
  awk -F';' '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { last = $0 }
    END {
      n = split(last, f, ";")
      split(f[col["StartTime"]], s, "\t"); split(f[col["CurrentTime"]], c, "\t")
      el = c[3] - s[3]; if (el <= 0) el = 1e-9
      succ = f[col["SuccessfulCall(C)"]] + 0; fail = f[col["FailedCall(C)"]] + 0
      printf "%d %d %.3f %.1f\n", succ, fail, el, succ / el
    }' "$d/stat.csv" 2>/dev/null || echo "0 0 0 0"
}
rtt_stats() { # rtt_stats <tag> -> "p50 p99 mean" in ms
  local f
  f=$(ls "$W/step-$1"/*_rtt.csv 2>/dev/null | head -1 || true)
  [ -n "$f" ] || { echo "NA NA NA"; return; }
  awk -F';' 'NR > 1 && $3 == 1 { print $2 }' "$f" | sort -n | awk '
    { v[NR] = $1; s += $1 }
    END {
      if (NR == 0) { print "NA NA NA"; exit }
      i50 = int(0.50 * NR + 0.999999); i99 = int(0.99 * NR + 0.999999)
      printf "%s %s %.3f\n", v[i50], v[i99], s / NR
    }'
}

step_ok() { # step_ok <rate> <succ> <fail> <achieved>
  awk -v r="$1" -v s="$2" -v f="$3" -v a="$4" 'BEGIN { t = s + f; exit !(t > 0 && f / t < 0.01 && a >= 0.9 * r) }'
}

# ---------------------------------------------------------------- measure each mode
nsd_queries() { nsd-control -c "$W/nsd.conf" stats_noreset 2>/dev/null | awk -F= '$1 == "num.queries" { print $2 }' || true; }
# CPU accounting: clock ticks used by kamailio's processes; busy/total ticks of one CPU
TCK=$(getconf CLK_TCK)
tree_pids() { local c; echo "$1"; for c in $(pgrep -P "$1" || true); do tree_pids "$c"; done; }
tree_ticks() { # tree_ticks <pid>: user+sys clock ticks of a process and all its descendants
  local t=0 p v
  for p in $(tree_pids "$1"); do
    # the comm field may contain blanks ("nsd: server 1"): cut through the last ')' first
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || true); t=$((t + ${v:-0}))
  done
  echo "$t"
}
# cpu_ticks <cpu>: "busy total steal" ticks (steal: time the hypervisor gave to someone else)
cpu_ticks() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9 }' /proc/stat; }
per_call() { awk -v t="$1" -v hz="$TCK" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", 1e6 * t / hz / n; else print "NA" }'; }
pct() { awk -v f="$1" -v s="$2" 'BEGIN { t = f + s; if (t > 0) printf "%.2f", 100 * f / t; else print "NA" }'; }
declare -A KCPU NCPU CAP TP_P50 TP_P99 TP TP_FAIL LAT_P50 LAT_P99 LAT_FAIL STEP_BEST
# numbers_for <mode> <step> <calls>: sets INF, the injection file for one step of a mode
# (not called as $(...): emc_cold's counter must advance in this shell)
numbers_for() {
  case "$1" in
    emc_cold) cold_numbers "$3" "$W/cold-$2.csv"; INF="$W/cold-$2.csv" ;;
    *) INF="$W/numbers.csv" ;;
  esac
}
module_stats() { # module_stats <mode>: lookups and cache hits from privateness.status
  [ -S "$W/run-$1/ctl" ] || { echo "NA NA"; return; }
  kamcmd -s "unix:$W/run-$1/ctl" privateness.status 2>/dev/null \
    | awk -F': ' '$1 ~ /lookups$/ && $1 !~ /node/ { l = $2 } $1 ~ /cache_hits$/ { h = $2 } END { print (l == "" ? "NA" : l), (h == "" ? "NA" : h) }'
}
declare -A PR_P50 PR_P90 PR_P99 PR_FAIL HITRATE
for mode in $MODES; do
  start_kamailio "$mode"
  q0=$(nsd_queries); calls=0
  # sanity: a few calls must go through this routing
  numbers_for "$mode" sanity 25
  read -r s f _ _ < <(run_step "$mode-sanity" 50 25)
  calls=$((calls + s + f))
  if [ "$s" -lt 25 ]; then
    echo "$NAME: sanity calls failed in mode $mode (succ=$s fail=$f)" >&2
    tail -20 "$W/step-$mode-sanity/sipp.out" >&2; tail -20 "$W/kamailio-$mode.log" >&2; exit 1
  fi
  if [ "$mode" = emc_hit ] || [ "$mode" = emc_miss ] || [ "$mode" = emc_hook ]; then
    # Every number into every worker's caches (answers, or signature outcomes): four passes.
    ( cd "$W" && timeout 120 "${PIN_GEN[@]}" sipp 127.0.0.1:"$KAM_PORT" -sf "$W/uac.xml" -inf "$W/numbers-seq.csv" \
        -i 127.0.0.1 -p "$UAC_PORT" -r 2000 -m 4000 -l 256 -nostdin -buff_size 4194304 </dev/null >"$W/warm.out" 2>&1 ) || true
    echo "# $mode: caches warmed with 4000 calls" >&2
  fi
  read -r st_l0 st_h0 < <(module_stats "$mode")
  # 1. response time at a fixed, comfortable open-loop rate (same for every mode), with the
  #    microsecond probe placing its own calls alongside
  numbers_for "$mode" lat $((LAT_CPS * LAT_SECS))
  read -r _ lb0 ls0 < <(cpu_ticks "${CPUS[0]}")
  run_step "$mode-lat" "$LAT_CPS" $((LAT_CPS * LAT_SECS)) > "$W/lat-$mode.res" &
  lat_pid=$!
  probe_calls=$((LAT_SECS * 1000 / PROBE_INTERVAL_MS * 9 / 10))
  numbers_for "$mode" probe "$probe_calls"; probe_inf=$INF
  probe_order=random; [ "$mode" = emc_cold ] && probe_order=sequential
  sleep 0.2
  "${PIN_GEN[@]}" python3 "$ROOT/bench/sip-probe.py" --target 127.0.0.1:"$KAM_PORT" --numbers "$probe_inf" \
    --calls "$probe_calls" --interval-ms "$PROBE_INTERVAL_MS" --order "$probe_order" > "$W/probe-$mode.out" 2>&1 || true
  wait "$lat_pid" || true
  read -r s f el ach < "$W/lat-$mode.res"
  read -r _ lb1 ls1 < <(cpu_ticks "${CPUS[0]}")
  lat_steal=$(awk -v s=$((ls1 - ls0)) -v t=$((lb1 - lb0)) 'BEGIN { printf "%.0f", 100 * s / (t ? t : 1) }')
  calls=$((calls + s + f))
  read -r p50 p99 _ < <(rtt_stats "$mode-lat")
  LAT_P50[$mode]=$p50; LAT_P99[$mode]=$p99; LAT_FAIL[$mode]=$(pct "$f" "$s")
  probe=$(grep '^PROBE' "$W/probe-$mode.out" || true)
  [ -n "$probe" ] || { echo "$NAME: sip-probe failed in mode $mode:" >&2; cat "$W/probe-$mode.out" >&2; exit 1; }
  PR_P50[$mode]=$(sed 's/.*p50_us=\([0-9.na]*\).*/\1/' <<< "$probe"); PR_P90[$mode]=$(sed 's/.*p90_us=\([0-9.na]*\).*/\1/' <<< "$probe")
  PR_P99[$mode]=$(sed 's/.*p99_us=\([0-9.na]*\).*/\1/' <<< "$probe"); PR_FAIL[$mode]=$(sed 's/.*failed=\([0-9]*\).*/\1/' <<< "$probe")
  echo "# $mode latency run: ${LAT_CPS} cps for ${LAT_SECS}s ok=$s failed=$f; SIPp INVITE->200 p50=${p50}ms p99=${p99}ms; probe: $probe; stolen by the hypervisor from kamailio's cpu: ${lat_steal}%" >&2
  read -r st_l1 st_h1 < <(module_stats "$mode")
  if [ "$st_l0" != NA ] && [ "$st_l1" != NA ]; then
    HITRATE[$mode]=$(awk -v l=$((st_l1 - st_l0)) -v h=$((st_h1 - st_h0)) 'BEGIN { if (l > 0) printf "%.1f", 100 * h / l; else print "NA" }')
    echo "# $mode: privateness.status during the latency run: $((st_l1 - st_l0)) lookups, cache hit rate ${HITRATE[$mode]}%" >&2
  fi
  # 2. throughput: SIPp keeps CONC calls in flight (closed loop, no rate cap); a short
  #    calibration run sizes the measured run to about TP_SECS seconds
  numbers_for "$mode" cal "$CAL_CALLS"
  read -r s f el ach < <(run_step "$mode-cal" 100000 "$CAL_CALLS" "$CONC")
  calls=$((calls + s + f))
  n=$(awk -v a="$ach" -v t="$TP_SECS" 'BEGIN { n = int(a * t); if (n < 1000) n = 1000; print n }')
  numbers_for "$mode" tp "$n"
  k0=$(tree_ticks "$KAM_PID"); n0=$(tree_ticks "$NSD_PID"); cpu_info=
  if [ "${#PIN_SUT[@]}" -gt 0 ]; then read -r a0 b0 e0 < <(cpu_ticks "${CPUS[0]}"); read -r c0 d0 g0 < <(cpu_ticks "${CPUS[1]}"); fi
  read -r s f el ach < <(run_step "$mode-tp" 100000 "$n" "$CONC")
  k1=$(tree_ticks "$KAM_PID"); n1=$(tree_ticks "$NSD_PID")
  if [ "${#PIN_SUT[@]}" -gt 0 ]; then
    read -r a1 b1 e1 < <(cpu_ticks "${CPUS[0]}"); read -r c1 d1 g1 < <(cpu_ticks "${CPUS[1]}")
    cpu_info=$(awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v c=$((c1 - c0)) -v d=$((d1 - d0)) -v e=$((e1 - e0)) -v g=$((g1 - g0)) \
      'BEGIN { printf "; busy: kamailio cpu %.0f%%, sipp+nsd cpu %.0f%%; stolen by the hypervisor: %.0f%%, %.0f%%", 100 * a / (b ? b : 1), 100 * c / (d ? d : 1), 100 * e / (b ? b : 1), 100 * g / (d ? d : 1) }')
  fi
  calls=$((calls + s + f))
  TP[$mode]=$ach; TP_FAIL[$mode]=$(pct "$f" "$s")
  KCPU[$mode]=$(per_call $((k1 - k0)) $((s + f)))
  NCPU[$mode]=$(per_call $((n1 - n0)) $((s + f)))
  CAP[$mode]=$(awk -v u="${KCPU[$mode]}" 'BEGIN { if (u > 0) printf "%.0f", 1e6 / u; else print "NA" }')
  read -r p50 p99 _ < <(rtt_stats "$mode-tp")
  TP_P50[$mode]=$p50; TP_P99[$mode]=$p99
  echo "# $mode throughput run: ${CONC} calls in flight, ok=$s failed=$f (${TP_FAIL[$mode]}%) in ${el}s -> ${ach} successful calls/s; INVITE->200 p50=${p50}ms p99=${p99}ms; CPU per call: kamailio ${KCPU[$mode]} us (= ${CAP[$mode]} calls/s per core), nsd ${NCPU[$mode]} us${cpu_info}" >&2
  # 3. optional: open-loop rate stepping (x1.25, then bisection) for the highest
  #    rate with < 1% failed calls and >= 90% of the target achieved. Noisy here (UDP bursts).
  if [ "$STEP_SEARCH" = 1 ]; then
    best=0; hi=0; steps=0
    # start at START_CPS if given, else at 60 % of the closed-loop throughput; grow x1.25
    rate=${START_CPS:-$(awk -v t="${TP[$mode]}" 'BEGIN { r = int(0.6 * t); print (r < 100 ? 100 : r) }')}
    while [ "$steps" -lt $((MAX_STEPS - REFINE)) ] && [ "$rate" -le "$MAX_CPS" ]; do
      steps=$((steps + 1))
      numbers_for "$mode" "$rate" $((rate * STEP_SECS))
      read -r s f el ach < <(run_step "$mode-$rate" "$rate" $((rate * STEP_SECS)))
      calls=$((calls + s + f))
      if step_ok "$rate" "$s" "$f" "$ach"; then v=PASS; else v=FAIL; fi
      echo "# $mode step target=${rate}cps ok=$s failed=$f elapsed=${el}s achieved=${ach}cps $v" >&2
      if [ "$v" = PASS ]; then best=$rate; rate=$((rate * 5 / 4)); else hi=$rate; break; fi
    done
    for _ in $(seq 1 "$REFINE"); do
      [ "$hi" -gt 0 ] && [ "$best" -gt 0 ] || break
      mid=$(((best + hi) / 2))
      [ $((hi - best)) -gt $((best / 20)) ] || break
      numbers_for "$mode" "$mid" $((mid * STEP_SECS))
      read -r s f el ach < <(run_step "$mode-$mid" "$mid" $((mid * STEP_SECS)))
      calls=$((calls + s + f))
      if step_ok "$mid" "$s" "$f" "$ach"; then v=PASS; best=$mid; else v=FAIL; hi=$mid; fi
      echo "# $mode step target=${mid}cps ok=$s failed=$f elapsed=${el}s achieved=${ach}cps $v (refine)" >&2
    done
    STEP_BEST[$mode]=$best
  fi
  stop_kamailio
  q1=$(nsd_queries)
  echo "# $mode: nsd answered $(( ${q1:-0} - ${q0:-0} )) DNS queries for $calls calls" >&2
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "NA" }'; }
for mode in $MODES; do
  echo "RESULT kamailio_${mode}_probe_p50_at_${LAT_CPS}cps ${PR_P50[$mode]} us"
  echo "RESULT kamailio_${mode}_probe_p90_at_${LAT_CPS}cps ${PR_P90[$mode]} us"
  echo "RESULT kamailio_${mode}_probe_p99_at_${LAT_CPS}cps ${PR_P99[$mode]} us"
  echo "RESULT kamailio_${mode}_probe_failed_at_${LAT_CPS}cps ${PR_FAIL[$mode]} calls"
  if [ -n "${HITRATE[$mode]:-}" ]; then echo "RESULT kamailio_${mode}_cache_hit_rate ${HITRATE[$mode]} %"; fi
  echo "RESULT kamailio_${mode}_rt_p50_at_${LAT_CPS}cps ${LAT_P50[$mode]} ms"
  echo "RESULT kamailio_${mode}_rt_p99_at_${LAT_CPS}cps ${LAT_P99[$mode]} ms"
  echo "RESULT kamailio_${mode}_failed_at_${LAT_CPS}cps ${LAT_FAIL[$mode]} %"
  echo "RESULT kamailio_${mode}_rt_p50_at_max ${TP_P50[$mode]} ms"
  echo "RESULT kamailio_${mode}_rt_p99_at_max ${TP_P99[$mode]} ms"
  echo "RESULT kamailio_${mode}_failed_at_max ${TP_FAIL[$mode]} %"
  echo "RESULT kamailio_${mode}_nsd_cpu_per_call ${NCPU[$mode]} us"
  echo "RESULT kamailio_${mode}_cpu_per_call ${KCPU[$mode]} us"
  echo "RESULT kamailio_${mode}_capacity_per_core ${CAP[$mode]} calls/s"
  [ "$STEP_SEARCH" = 1 ] && echo "RESULT kamailio_${mode}_stepped_max_cps ${STEP_BEST[$mode]} calls/s"
  echo "RESULT kamailio_${mode}_max_cps ${TP[$mode]} calls/s"
done
for mode in $MODES; do
  [ "$mode" = static ] && continue
  if [[ " $MODES " == *" static "* ]]; then
    echo "RESULT kamailio_${mode}_over_static_capacity $(ratio "${CAP[$mode]}" "${CAP[static]}") ratio"
    echo "RESULT kamailio_${mode}_over_static_max_cps $(ratio "${TP[$mode]}" "${TP[static]}") ratio"
  fi
done
if [[ " $MODES " == *" enum1 "* ]]; then
  echo "RESULT kamailio_enum_max_cps ${TP[enum1]} calls/s"
fi
if [[ " $MODES " == *" enum1 "* ]]; then
  for mode in emc_hit emc_miss emc_cold; do
    [[ " $MODES " == *" $mode "* ]] || continue
    echo "RESULT ${mode}_over_enum_probe_p50 $(ratio "${PR_P50[$mode]}" "${PR_P50[enum1]}") ratio (INVITE->200, one call at a time under ${LAT_CPS} cps: ${PR_P50[$mode]} vs ${PR_P50[enum1]} us)"
    echo "RESULT ${mode}_over_enum_probe_p99 $(ratio "${PR_P99[$mode]}" "${PR_P99[enum1]}") ratio (${PR_P99[$mode]} vs ${PR_P99[enum1]} us)"
    echo "RESULT ${mode}_over_enum_max_cps $(ratio "${TP[$mode]}" "${TP[enum1]}") ratio"
    echo "RESULT ${mode}_over_enum_capacity_per_core $(ratio "${CAP[$mode]}" "${CAP[enum1]}") ratio"
    echo "RESULT ${mode}_over_enum_cpu_per_call $(ratio "${KCPU[$mode]}" "${KCPU[enum1]}") ratio (Kamailio CPU per call)"
    echo "RESULT ${mode}_rt_p50_p99_at_${LAT_CPS}cps ${LAT_P50[$mode]} ${LAT_P99[$mode]} ms vs enum ${LAT_P50[enum1]} ${LAT_P99[enum1]} ms (SIPp, 1 ms resolution)"
    echo "RESULT ${mode}_rt_p50_p99_at_max ${TP_P50[$mode]} ${TP_P99[$mode]} ms vs enum ${TP_P50[enum1]} ${TP_P99[enum1]} ms"
  done
fi
if [[ " $MODES " == *" emc_hit "* && " $MODES " == *" emc_hook "* ]]; then
  read -r _ _ _ hp50 _ hp99 _ hmax < <("$ROOT/target/release/hook_latency" "$ROOT/bench/lua/on_enum-20.lua" 200000)
  echo "RESULT emc_hook_over_emc_hit_max_cps $(ratio "${TP[emc_hook]}" "${TP[emc_hit]}") ratio (goal >= 0.9: ${TP[emc_hook]} vs ${TP[emc_hit]} calls/s)"
  echo "RESULT emc_hook_over_emc_hit_capacity_per_core $(ratio "${CAP[emc_hook]}" "${CAP[emc_hit]}") ratio"
  echo "RESULT emc_hook_over_emc_hit_cpu_per_call $(ratio "${KCPU[emc_hook]}" "${KCPU[emc_hit]}") ratio (${KCPU[emc_hook]} vs ${KCPU[emc_hit]} us)"
  echo "RESULT on_enum_hook_latency_p50 $hp50 us (in-process, 200000 calls)"
  echo "RESULT on_enum_hook_latency_p99 $hp99 us (max $hmax)"
fi
