#!/usr/bin/env bash
# Records real kernel conntrack behaviour into samples/<scenario>/ (see samples/README.md).
#
#   bash samples/record.sh [SCENARIO[:NAT]…]     (no argument: every scenario in DEFAULT_RUNS)
#   NAT=masquerade bash samples/record.sh ping   (NAT mode for scenarios given without ":NAT")
#   bash samples/record.sh --out-dir DIR ping    (or OUT_DIR=DIR: record into DIR/<scenario>/ instead)
#
# Needs root, a kernel with network namespaces and nf_conntrack (helpers ftp/tftp, nat, ctnetlink), and
# these Debian packages:  apt-get install iproute2 iptables conntrack tcpdump ethtool python3 procps
# (kmod too if the conntrack helpers are modules rather than built in).
#
# Environment knobs: NAT (default per scenario), WAIT_MAX (seconds to wait for the table to empty, 90),
# REAPER (0, the default: expired entries are deleted by the kernel's own garbage collector, which on 6.18
# with a near-empty table does so within tens of ms of expiry; 1: also list the router's table every
# REAPER_INTERVAL s, which deletes expired entries on sight, for hosts whose busy table slows the collector),
# REAPER_INTERVAL (0.25), KEEP_FAILED (1: keep a failed scenario's working folder for inspection),
# OUT_DIR (where the scenario folders go; default: this script's folder, i.e. samples/),
# LISTENER_PRIORITY (auto, the default: the event listeners and captures run under `chrt -f 50` where the
# kernel allows real-time scheduling, else `nice -n -20`; rt, nice or none force one).
set -uo pipefail

SAMPLES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT_DIR=${OUT_DIR:-$SAMPLES_DIR}
LISTENER_PRIORITY=${LISTENER_PRIORITY:-auto}
TRAFFIC="$SAMPLES_DIR/tools/traffic.py"
PYTHON=${PYTHON:-python3}
WAIT_MAX=${WAIT_MAX:-90}
REAPER=${REAPER:-0}
REAPER_INTERVAL=${REAPER_INTERVAL:-0.25}
KEEP_FAILED=${KEEP_FAILED:-0}

# Topology (addresses from the seed's FTP example; IPv6 from 2001:db8::/32).
CLIENT_V4=10.1.2.3
ROUTER_IN_V4=10.1.2.1
ROUTER_OUT_V4=198.51.100.32
SERVER_V4=203.0.113.47
CLIENT_V6=2001:db8:1::3
ROUTER_IN_V6=2001:db8:1::1
ROUTER_OUT_V6=2001:db8:2::32
SERVER_V6=2001:db8:2::47
ROUTER_IN_IF=in0
ROUTER_OUT_IF=out0
HOST_IF=eth0

# Router timeouts: short so that every entry dies within seconds, and pairwise distinct within a protocol so
# that a printed timeout tells which rule the kernel applied.
ROUTER_TIMEOUTS=(
  net.netfilter.nf_conntrack_tcp_timeout_syn_sent=5
  net.netfilter.nf_conntrack_tcp_timeout_syn_recv=4
  net.netfilter.nf_conntrack_tcp_timeout_established=30
  net.netfilter.nf_conntrack_tcp_timeout_fin_wait=6
  net.netfilter.nf_conntrack_tcp_timeout_close_wait=7
  net.netfilter.nf_conntrack_tcp_timeout_last_ack=3
  net.netfilter.nf_conntrack_tcp_timeout_time_wait=2
  net.netfilter.nf_conntrack_tcp_timeout_close=1
  net.netfilter.nf_conntrack_tcp_timeout_max_retrans=9
  net.netfilter.nf_conntrack_tcp_timeout_unacknowledged=8
  net.netfilter.nf_conntrack_udp_timeout=3
  net.netfilter.nf_conntrack_udp_timeout_stream=11
  net.netfilter.nf_conntrack_icmp_timeout=4
  net.netfilter.nf_conntrack_icmpv6_timeout=4
  net.netfilter.nf_conntrack_generic_timeout=10
)
ROUTER_SETTINGS=(
  net.netfilter.nf_conntrack_acct=1
  net.netfilter.nf_conntrack_timestamp=1
  net.netfilter.nf_conntrack_events=1
)

# name|default NAT|needs IPv6|description
SCENARIOS=(
  "ssh-syn-unanswered|none|0|SYN to port 22 dropped silently by the server: the client retransmits the SYN about every second and gives up after 4 s"
  "ping|none|0|three ICMP echo requests 0.5 s apart, each answered"
  "ping-unanswered|none|0|three ICMP echo requests 0.5 s apart, dropped silently by the server"
  "ping-ipv6|none|1|three ICMPv6 echo requests 0.5 s apart, each answered"
  "tcp-client-close|none|0|TCP echo of three lines, the client closes first, the server closes on EOF"
  "tcp-server-close|none|0|TCP: the server answers and closes first; the client acks the FIN, waits 0.5 s, closes (CLOSE_WAIT path)"
  "tcp-refused|none|0|TCP SYN to a closed port answered by RST/ACK"
  "tcp-reset-midstream|none|0|TCP echo of two lines, then the client aborts with an RST (SO_LINGER 0)"
  "udp-request-response|none|0|one UDP datagram and its answer"
  "udp-stream-assured|none|0|ten UDP datagrams 0.45 s apart, each answered: the flow lasts over 2 s and becomes ASSURED"
  "udp-unanswered|none|0|three UDP datagrams 1 s apart, dropped silently by the server"
  "icmp-port-unreachable|none|0|two UDP datagrams 1 s apart to a closed port, each answered by ICMP port unreachable"
  "tcp-midstream-pickup|none|0|TCP echo: after three lines the router's table is flushed and the captures start; four more lines follow, picked up loosely"
  "tcp-port-reuse-after-timewait|none|0|three TCP connections from source port 40000, the server closing first: the 2nd while the router's entry is in TIME_WAIT, the 3rd after it expired"
  "tcp-port-clash|masquerade|0|two TCP echo connections to the same server port from the same source port 40001, one from 10.1.2.3 and one from a second inside address 10.1.2.4, both open at once: MASQUERADE must give the second another port"
  "ftp-active|masquerade|0|FTP login, LIST and RETR of 3000 bytes in active mode (PORT, data from port 20)"
  "ftp-active-close-wait|masquerade|0|the seed's FTP session: login, LIST and RETR of 3000 bytes in active mode; the client closes each data connection 0.25 s after the server's FIN, which it acks alone first (data connection through CLOSE_WAIT); the server closes the control connection after the client"
  "ftp-passive|none|0|FTP login, LIST and RETR of 3000 bytes in passive mode (PASV)"
  "ftp-ipv6-eprt-epsv|none|1|FTP over IPv6: login, LIST in active mode (EPRT), RETR of 3000 bytes in passive mode (EPSV)"
  "tftp-read|none|0|TFTP read request for 1200 bytes; the server answers from a fresh port (3 DATA blocks, 3 ACKs)"
)
DEFAULT_RUNS=(
  ssh-syn-unanswered ping ping-unanswered ping-ipv6 tcp-client-close tcp-server-close tcp-refused
  tcp-reset-midstream udp-request-response udp-stream-assured udp-unanswered icmp-port-unreachable
  tcp-midstream-pickup tcp-port-reuse-after-timewait tcp-port-clash ftp-active ftp-active-close-wait ftp-passive ftp-ipv6-eprt-epsv
  tftp-read
  ftp-active:none ftp-passive:masquerade tftp-read:masquerade tcp-client-close:masquerade
  udp-request-response:masquerade ping:masquerade
  ssh-syn-unanswered:masquerade ping-unanswered:masquerade ping-ipv6:masquerade tcp-server-close:masquerade
  tcp-refused:masquerade tcp-reset-midstream:masquerade udp-stream-assured:masquerade
  udp-unanswered:masquerade icmp-port-unreachable:masquerade tcp-midstream-pickup:masquerade
  tcp-port-reuse-after-timewait:masquerade ftp-ipv6-eprt-epsv:masquerade
)

say() { printf 'record: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# ------------------------------------------------------------------ process and namespace bookkeeping

# `conntrack -E -o timestamp` stamps a line when it reads the netlink message, not when the kernel sent it,
# so a listener waiting for a CPU behind the traffic stamps late (up to 180 ms seen on a busy host). Running
# the listeners and captures above everything else keeps the stamp close to the packet. Sets PRIORITY
# (the command prefix) and PRIORITY_NAME (recorded in scenario.json).
choose_listener_priority() {
  local wanted=$LISTENER_PRIORITY
  PRIORITY=()
  PRIORITY_NAME=none
  if [ "$wanted" = auto ] || [ "$wanted" = rt ]; then
    # Containers and RT-group-scheduled cgroups may refuse SCHED_FIFO even to root: probe it.
    if command -v chrt >/dev/null && chrt -f 50 true 2>/dev/null; then
      PRIORITY=(chrt -f 50)
      PRIORITY_NAME="chrt -f 50"
      return 0
    fi
    [ "$wanted" = rt ] && die "LISTENER_PRIORITY=rt but chrt -f 50 is not permitted here"
  fi
  if [ "$wanted" = auto ] || [ "$wanted" = nice ]; then
    if nice -n -20 true 2>/dev/null && [ "$(nice -n -20 nice)" = -20 ]; then
      PRIORITY=(nice -n -20)
      PRIORITY_NAME="nice -n -20"
      return 0
    fi
    [ "$wanted" = nice ] && die "LISTENER_PRIORITY=nice but nice -n -20 is not permitted here"
  fi
  case "$wanted" in
    auto | none) ;;
    *) die "unknown LISTENER_PRIORITY '$wanted' (auto, rt, nice or none)" ;;
  esac
}

RUN_ID=$$
NS_CLIENT="pcc-client-$RUN_ID"
NS_ROUTER="pcc-router-$RUN_ID"
NS_SERVER="pcc-server-$RUN_ID"
BACKGROUND_PIDS=()
WORK_ROOT=""

in_client() { ip netns exec "$NS_CLIENT" "$@"; }
in_router() { ip netns exec "$NS_ROUTER" "$@"; }
in_server() { ip netns exec "$NS_SERVER" "$@"; }

start_background() { # start_background LOGFILE CMD… ; remembers the pid in LAST_PID
  "${@:2}" >"$1" 2>&1 &
  LAST_PID=$!
  BACKGROUND_PIDS+=("$LAST_PID")
}

# Ask a process to stop with SIGTERM (tcpdump and conntrack -E then flush and exit), escalate after a bound.
# Not SIGINT: a non-interactive shell starts background jobs with SIGINT ignored.
stop_process() {
  local pid=$1 bound_tenths=${2:-50} waited=0
  kill -0 "$pid" 2>/dev/null || {
    wait "$pid" 2>/dev/null
    return 0
  }
  kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$bound_tenths" ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid ignored SIGTERM, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

stop_all_background() {
  local pid
  for pid in "${BACKGROUND_PIDS[@]}"; do
    stop_process "$pid" 20
  done
  BACKGROUND_PIDS=()
}

teardown_topology() {
  local ns
  for ns in "$NS_CLIENT" "$NS_ROUTER" "$NS_SERVER"; do
    ip netns del "$ns" 2>/dev/null
  done
}

cleanup() {
  stop_all_background
  teardown_topology
  if [ -n "$WORK_ROOT" ] && [ -d "$WORK_ROOT" ]; then
    if [ "$KEEP_FAILED" = 1 ] && [ -n "$(ls -A "$WORK_ROOT" 2>/dev/null)" ]; then
      say "kept failed recordings in $WORK_ROOT"
    else
      rm -rf "$WORK_ROOT"
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Poll a condition every 0.1 s for at most BOUND seconds.
wait_until() { # wait_until BOUND DESCRIPTION CMD…
  local bound_tenths=$(($1 * 10)) description=$2 waited=0
  shift 2
  until "$@"; do
    if [ "$waited" -ge "$bound_tenths" ]; then
      say "timed out after ${bound_tenths}/10 s waiting for $description"
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

# ------------------------------------------------------------------ topology

check_prerequisites() {
  [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, iptables, conntrack)"
  local tool
  for tool in ip iptables ip6tables conntrack tcpdump ethtool sysctl "$PYTHON" timeout stdbuf; do
    command -v "$tool" >/dev/null || die "missing tool: $tool (see the package list at the top of this script)"
  done
  # The helpers may be modules or built in; modprobe failing is fine if they are already there.
  if command -v modprobe >/dev/null; then
    modprobe -q -a nf_conntrack nf_conntrack_ftp nf_conntrack_tftp nf_nat_ftp nf_nat_tftp 2>/dev/null || true
  fi
}


in_ns_sysctl() { # in_ns_sysctl NS KEY=VALUE…
  local ns=$1
  shift
  ip netns exec "$ns" sysctl -q -w "$@" >/dev/null || die "sysctl $* failed in $ns"
}

# Offloads off: the captures must hold real checksums and wire-sized segments, not GSO super-packets.
plain_link() { # plain_link NS IF
  ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 ||
    die "ethtool could not turn offloads off on $2 in $1"
  ip -n "$1" link set "$2" up
}

setup_topology() { # setup_topology NAT IPV6
  local nat=$1 ipv6=$2 ns disable_v6=1
  [ "$ipv6" = 1 ] && disable_v6=0
  teardown_topology
  for ns in "$NS_CLIENT" "$NS_ROUTER" "$NS_SERVER"; do
    ip netns add "$ns" || die "cannot create namespace $ns"
    ip -n "$ns" link set lo up
    # Without IPv6 the IPv4 captures carry no neighbour-discovery or MLD chatter.
    in_ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6=$disable_v6 net.ipv6.conf.default.disable_ipv6=$disable_v6
    in_ns_sysctl "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    in_ns_sysctl "$ns" net.ipv6.conf.default.router_solicitations=0
  done
  ip -n "$NS_ROUTER" link add "$ROUTER_IN_IF" address 02:00:0a:01:02:01 type veth \
    peer name "$HOST_IF" netns "$NS_CLIENT" address 02:00:0a:01:02:03 || die "cannot create the inside veth"
  ip -n "$NS_ROUTER" link add "$ROUTER_OUT_IF" address 02:00:c6:33:64:20 type veth \
    peer name "$HOST_IF" netns "$NS_SERVER" address 02:00:cb:00:71:2f || die "cannot create the outside veth"
  plain_link "$NS_CLIENT" "$HOST_IF"
  plain_link "$NS_SERVER" "$HOST_IF"
  plain_link "$NS_ROUTER" "$ROUTER_IN_IF"
  plain_link "$NS_ROUTER" "$ROUTER_OUT_IF"

  ip -n "$NS_CLIENT" addr add "$CLIENT_V4/24" dev "$HOST_IF"
  ip -n "$NS_CLIENT" route add default via "$ROUTER_IN_V4"
  ip -n "$NS_ROUTER" addr add "$ROUTER_IN_V4/24" dev "$ROUTER_IN_IF"
  ip -n "$NS_ROUTER" addr add "$ROUTER_OUT_V4/24" dev "$ROUTER_OUT_IF"
  ip -n "$NS_ROUTER" route add 203.0.113.0/24 dev "$ROUTER_OUT_IF"
  ip -n "$NS_SERVER" addr add "$SERVER_V4/24" dev "$HOST_IF"
  ip -n "$NS_SERVER" route add 198.51.100.0/24 dev "$HOST_IF"
  # Without NAT the server must reach the inside network through the router; with NAT it never sees it.
  [ "$nat" = none ] && ip -n "$NS_SERVER" route add 10.1.2.0/24 via "$ROUTER_OUT_V4" dev "$HOST_IF"
  if [ "$ipv6" = 1 ]; then
    ip -n "$NS_CLIENT" addr add "$CLIENT_V6/64" dev "$HOST_IF" nodad
    ip -n "$NS_CLIENT" route add default via "$ROUTER_IN_V6"
    ip -n "$NS_ROUTER" addr add "$ROUTER_IN_V6/64" dev "$ROUTER_IN_IF" nodad
    ip -n "$NS_ROUTER" addr add "$ROUTER_OUT_V6/64" dev "$ROUTER_OUT_IF" nodad
    ip -n "$NS_SERVER" addr add "$SERVER_V6/64" dev "$HOST_IF" nodad
    ip -n "$NS_SERVER" route add 2001:db8:1::/64 via "$ROUTER_OUT_V6" dev "$HOST_IF"
  fi

  in_ns_sysctl "$NS_ROUTER" net.ipv4.ip_forward=1
  [ "$ipv6" = 1 ] && in_ns_sysctl "$NS_ROUTER" net.ipv6.conf.all.forwarding=1
  # 6.x attaches helpers only on request; these rules also make the router's namespace track at all.
  in_router iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp || die "CT --helper ftp failed"
  in_router iptables -t raw -A PREROUTING -p udp --dport 69 -j CT --helper tftp || die "CT --helper tftp failed"
  in_router ip6tables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp || die "ip6 CT --helper ftp failed"
  in_router ip6tables -t raw -A PREROUTING -p udp --dport 69 -j CT --helper tftp || die "ip6 CT helper tftp failed"
  case "$nat" in
    none) ;;
    masquerade)
      in_router iptables -t nat -A POSTROUTING -o "$ROUTER_OUT_IF" -j MASQUERADE || die "MASQUERADE failed"
      # The same for IPv6, so that the IPv6 scenarios can be recorded through MASQUERADE as well.
      in_router ip6tables -t nat -A POSTROUTING -o "$ROUTER_OUT_IF" -j MASQUERADE || die "ip6 MASQUERADE failed"
      ;;
    *) die "unknown NAT mode '$nat' (none or masquerade)" ;;
  esac
  # The sysctls exist once the namespace tracks, i.e. after the rules above.
  in_ns_sysctl "$NS_ROUTER" "${ROUTER_SETTINGS[@]}" "${ROUTER_TIMEOUTS[@]}"
}

# Per-scenario rules in the server namespace: silent drops (no RST, no ICMP error).
setup_server_rules() { # setup_server_rules SCENARIO
  case "$1" in
    ssh-syn-unanswered) in_server iptables -A INPUT -p tcp --dport 22 -j DROP ;;
    ping-unanswered) in_server iptables -A INPUT -p icmp --icmp-type echo-request -j DROP ;;
    udp-unanswered) in_server iptables -A INPUT -p udp --dport 9001 -j DROP ;;
  esac
}

# ------------------------------------------------------------------ recording machinery

listening() { grep -q "listening on" "$1" 2>/dev/null; }

# conntrack -E subscribes to NETLINK_NETFILTER (protocol 12) groups; count the subscribed sockets.
event_listeners_subscribed() {
  [ "$(in_router awk '$2 == 12 && $4 != "00000000" { n++ } END { print n + 0 }' /proc/net/netlink)" -ge "$1" ]
}

start_captures() { # start_captures WORKDIR
  local work=$1
  # -Z root: Debian's tcpdump otherwise drops to user tcpdump, which may not write the work folder.
  start_background "$work/tcpdump-inside.log" "${PRIORITY[@]}" ip netns exec "$NS_ROUTER" \
    tcpdump -Z root -U --immediate-mode -n -i "$ROUTER_IN_IF" -w "$work/inside.pcap"
  # The outside capture uses nanosecond timestamps so that both pcap magics are exercised.
  start_background "$work/tcpdump-outside.log" "${PRIORITY[@]}" ip netns exec "$NS_ROUTER" \
    tcpdump -Z root -U --immediate-mode -n -i "$ROUTER_OUT_IF" --time-stamp-precision=nano -w "$work/outside.pcap"
  wait_until 10 "tcpdump on $ROUTER_IN_IF" listening "$work/tcpdump-inside.log" || return 1
  wait_until 10 "tcpdump on $ROUTER_OUT_IF" listening "$work/tcpdump-outside.log" || return 1
}

start_event_listeners() { # start_event_listeners WORKDIR
  local work=$1 before
  before=$(in_router awk '$2 == 12 && $4 != "00000000" { n++ } END { print n + 0 }' /proc/net/netlink)
  start_background "$work/conntrack-events.log" "${PRIORITY[@]}" \
    sh -c 'exec 2>"$1"; exec ip netns exec "$2" stdbuf -oL conntrack -E -o timestamp >"$3"' sh \
    "$work/conntrack-events.stderr" "$NS_ROUTER" "$work/conntrack-events.txt"
  start_background "$work/expect-events.log" "${PRIORITY[@]}" \
    sh -c 'exec 2>"$1"; exec ip netns exec "$2" stdbuf -oL conntrack -E expect -o timestamp >"$3"' sh \
    "$work/expect-events.stderr" "$NS_ROUTER" "$work/expect-events.txt"
  wait_until 10 "conntrack -E to subscribe" event_listeners_subscribed $((before + 2)) || return 1
}

start_reaper() {
  [ "$REAPER" = 1 ] || return 0
  start_background /dev/null ip netns exec "$NS_ROUTER" sh -c \
    "while :; do conntrack -L >/dev/null 2>&1; sleep $REAPER_INTERVAL; done"
}

table_empty() {
  local entries expectations
  entries=$(in_router cat /proc/sys/net/netfilter/nf_conntrack_count)
  expectations=$(in_router conntrack -L expect 2>/dev/null | wc -l)
  [ "$entries" = 0 ] && [ "$expectations" = 0 ]
}

every_new_destroyed() { # every_new_destroyed EVENTS_FILE
  local created destroyed
  created=$(grep -c '\[NEW\]' "$1")
  destroyed=$(grep -c '\[DESTROY\]' "$1")
  [ "$created" -gt 0 ] && [ "$created" = "$destroyed" ]
}

recording_done() { table_empty && every_new_destroyed "$1"; }

# Ready files and the midstream pause live in WORKDIR; servers get a ready file, clients run in the foreground.
start_server() { # start_server SCENARIO WORKDIR ADDRESS
  case "$1" in
    tcp-client-close | tcp-server-close | tcp-reset-midstream | tcp-midstream-pickup | \
      tcp-port-reuse-after-timewait | tcp-port-clash | udp-request-response | udp-stream-assured | ftp-* | tftp-read) ;;
    *) return 0 ;;
  esac
  start_background "$2/server.log" ip netns exec "$NS_SERVER" timeout 120 "$PYTHON" "$TRAFFIC" server "$1" --server "$3" \
    --ready "$2/server.ready" --timeout 30
  SERVER_PID=$LAST_PID
  wait_until 10 "the $1 server" test -e "$2/server.ready"
}

run_client() { # run_client SCENARIO WORKDIR ADDRESS [ARGS…]
  in_client timeout 90 "$PYTHON" "$TRAFFIC" client "$1" --server "$3" --timeout 20 "${@:4}" >>"$2/client.log" 2>&1
}

write_metadata() { # write_metadata WORKDIR NAME SCENARIO NAT IPV6 DESCRIPTION STARTED
  local work=$1
  "$PYTHON" - "$@" <<'PYTHON'
import json, os, subprocess, sys
work, name, scenario, nat, ipv6, description, started = sys.argv[1:8]
env = os.environ

def sysctl_lines(path):
    values = {}
    with open(path) as lines:
        for line in lines:
            key, _, value = line.strip().partition(" = ")
            values[key] = value
    return values

def first_line(command):
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
        return (result.stdout + result.stderr).strip().splitlines()[0]
    except Exception as error:  # recorded as is: metadata must not abort a finished recording
        return f"unavailable: {error}"

def kernel_hz():
    try:
        import gzip
        with gzip.open("/proc/config.gz", "rt") as config:
            for line in config:
                if line.startswith("CONFIG_HZ="):
                    return int(line.split("=")[1])
    except OSError:
        pass
    return None

def count_packets(pcap):
    result = subprocess.run(["tcpdump", "-n", "-r", pcap], capture_output=True, text=True, timeout=30)
    return len(result.stdout.splitlines())

def count_lines(path, marker=""):
    with open(path) as lines:
        return sum(1 for line in lines if marker in line)

sysctls = sysctl_lines(os.path.join(work, "sysctl.txt"))
timeouts = {key.rsplit(".", 1)[1]: int(sysctls[key]) for key in sysctls if "timeout" in key}
metadata = {
    "name": name,
    "scenario": scenario,
    "description": description,
    "nat": nat,
    "ipv6": ipv6 == "1",
    "recordedAt": started,
    "kernel": os.uname().release,
    "kernelHz": kernel_hz(),
    "conntrack": first_line(["conntrack", "--version"]),
    "tcpdump": first_line(["tcpdump", "--version"]),
    "topology": {
        "client": {"namespace": "client", "interface": env["HOST_IF"], "ipv4": env["CLIENT_V4"], "ipv6": env["CLIENT_V6"]},
        "router": {
            "inside": {"interface": env["ROUTER_IN_IF"], "ipv4": env["ROUTER_IN_V4"], "ipv6": env["ROUTER_IN_V6"]},
            "outside": {"interface": env["ROUTER_OUT_IF"], "ipv4": env["ROUTER_OUT_V4"], "ipv6": env["ROUTER_OUT_V6"]},
        },
        "server": {"namespace": "server", "interface": env["HOST_IF"], "ipv4": env["SERVER_V4"], "ipv6": env["SERVER_V6"]},
    },
    "helpers": {"ftp": "raw PREROUTING tcp dport 21 -j CT --helper ftp", "tftp": "raw PREROUTING udp dport 69 -j CT --helper tftp"},
    "natRule": "nat POSTROUTING -o " + env["ROUTER_OUT_IF"] + " -j MASQUERADE" if nat == "masquerade" else "none",
    "conntrackSettings": {
        key.rsplit(".", 1)[1]: int(sysctls[key])
        for key in sysctls
        if key.endswith(("_acct", "_timestamp", "_events", "_checksum", "_tcp_loose", "_tcp_be_liberal"))
    },
    "timeouts": timeouts,
    "reaper": {"enabled": env["REAPER"] == "1", "intervalSeconds": float(env["REAPER_INTERVAL"])},
    "listenerPriority": env["PRIORITY_NAME"],
    "captures": {
        "inside.pcap": {"interface": env["ROUTER_IN_IF"], "timestampPrecision": "micro", "packets": count_packets(os.path.join(work, "inside.pcap"))},
        "outside.pcap": {"interface": env["ROUTER_OUT_IF"], "timestampPrecision": "nano", "packets": count_packets(os.path.join(work, "outside.pcap"))},
    },
    "events": {
        "lines": count_lines(os.path.join(work, "conntrack-events.txt")),
        "new": count_lines(os.path.join(work, "conntrack-events.txt"), "[NEW]"),
        "update": count_lines(os.path.join(work, "conntrack-events.txt"), "[UPDATE]"),
        "destroy": count_lines(os.path.join(work, "conntrack-events.txt"), "[DESTROY]"),
        "expectNew": count_lines(os.path.join(work, "expect-events.txt"), "[NEW]"),
        "expectDestroy": count_lines(os.path.join(work, "expect-events.txt"), "[DESTROY]"),
    },
}
with open(os.path.join(work, "scenario.json"), "w") as out:
    json.dump(metadata, out, indent=2)
    out.write("\n")
PYTHON
}

# Record one scenario into samples/NAME/ (NAME = scenario, plus "-nat-MODE" when MODE is not its default).
record_scenario() { # record_scenario SCENARIO NAT
  local scenario=$1 nat=$2 entry entry_name entry_nat entry_ipv6 entry_description
  local default_nat="" ipv6=0 description="" name work server
  for entry in "${SCENARIOS[@]}"; do
    IFS='|' read -r entry_name entry_nat entry_ipv6 entry_description <<<"$entry"
    if [ "$entry_name" = "$scenario" ]; then
      default_nat=$entry_nat ipv6=$entry_ipv6 description=$entry_description
    fi
  done
  [ -n "$default_nat" ] || {
    say "unknown scenario $scenario"
    return 1
  }
  [ -n "$nat" ] || nat=$default_nat
  name=$scenario
  [ "$nat" = "$default_nat" ] || name="$scenario-nat-$nat"
  [ "$nat" = masquerade ] && description="$description; MASQUERADE on the router's outside interface"
  server=$SERVER_V4
  [ "$ipv6" = 1 ] && server=$SERVER_V6
  work="$WORK_ROOT/$name"
  rm -rf "$work"
  mkdir -p "$work"
  say "recording $name (NAT $nat)"

  setup_topology "$nat" "$ipv6" && setup_server_rules "$scenario" || return 1
  if [ "$scenario" = tcp-port-clash ]; then
    ip -n "$NS_CLIENT" addr add 10.1.2.4/24 dev "$HOST_IF" || return 1
  fi
  start_server "$scenario" "$work" "$server" || return 1
  local started
  started=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)

  case "$scenario" in
    tcp-midstream-pickup)
      # The client pauses mid-connection; then the table is flushed and the recording starts.
      ip netns exec "$NS_CLIENT" timeout 90 "$PYTHON" "$TRAFFIC" client "$scenario" --server "$server" --timeout 20 \
        --paused "$work/client.paused" --go "$work/client.go" >>"$work/client.log" 2>&1 &
      local client_pid=$!
      BACKGROUND_PIDS+=("$client_pid")
      wait_until 30 "the client to pause" test -e "$work/client.paused" || return 1
      in_router conntrack -F >>"$work/flush.log" 2>&1
      ;;
  esac

  start_captures "$work" && start_event_listeners "$work" || return 1
  in_router sysctl -a 2>/dev/null | grep nf_conntrack >"$work/sysctl.txt"
  start_reaper

  case "$scenario" in
    tcp-midstream-pickup)
      : >"$work/client.go"
      wait "$client_pid" || {
        say "client failed, see $work/client.log"
        return 1
      }
      ;;
    tcp-port-reuse-after-timewait)
      # The third connection waits longer than the router's TIME_WAIT timeout.
      run_client "$scenario" "$work" "$server" --reuse-pause 3.5 || {
        say "client failed, see $work/client.log"
        return 1
      }
      ;;
    *)
      run_client "$scenario" "$work" "$server" || {
        say "client failed, see $work/client.log"
        return 1
      }
      ;;
  esac

  if [ -n "${SERVER_PID:-}" ]; then
    wait_until 30 "the server to finish" bash -c "! kill -0 $SERVER_PID 2>/dev/null" || return 1
    wait "$SERVER_PID" || {
      say "server failed, see $work/server.log"
      return 1
    }
    SERVER_PID=""
  fi
  wait_until "$WAIT_MAX" "an empty table and a DESTROY for every NEW" recording_done "$work/conntrack-events.txt" ||
    return 1
  # A last moment for events still in flight, then stop everything: SIGTERM lets tcpdump finish its files.
  sleep 0.5
  stop_all_background

  local failures=0 capture
  for capture in inside outside; do
    if ! grep -q "packets captured" "$work/tcpdump-$capture.log"; then
      say "$capture capture did not end cleanly"
      failures=1
    elif grep -q "[1-9][0-9]* packets dropped by kernel" "$work/tcpdump-$capture.log"; then
      say "$capture capture dropped packets"
      failures=1
    fi
    [ "$(tcpdump -n -r "$work/$capture.pcap" 2>/dev/null | wc -l)" -gt 0 ] || {
      say "$capture capture is empty"
      failures=1
    }
  done
  every_new_destroyed "$work/conntrack-events.txt" || {
    say "NEW and DESTROY counts differ"
    failures=1
  }
  [ "$failures" = 0 ] || return 1

  HOST_IF=$HOST_IF ROUTER_IN_IF=$ROUTER_IN_IF ROUTER_OUT_IF=$ROUTER_OUT_IF CLIENT_V4=$CLIENT_V4 CLIENT_V6=$CLIENT_V6 \
    ROUTER_IN_V4=$ROUTER_IN_V4 ROUTER_IN_V6=$ROUTER_IN_V6 ROUTER_OUT_V4=$ROUTER_OUT_V4 ROUTER_OUT_V6=$ROUTER_OUT_V6 \
    SERVER_V4=$SERVER_V4 SERVER_V6=$SERVER_V6 REAPER=$REAPER REAPER_INTERVAL=$REAPER_INTERVAL \
    PRIORITY_NAME=$PRIORITY_NAME write_metadata "$work" "$name" "$scenario" "$nat" "$ipv6" "$description" "$started" || return 1

  local target="$OUT_DIR/$name"
  rm -rf "$target.tmp"
  mkdir -p "$target.tmp"
  cp "$work"/{inside.pcap,outside.pcap,conntrack-events.txt,expect-events.txt,sysctl.txt,scenario.json} "$target.tmp/"
  rm -rf "$target"
  mv "$target.tmp" "$target"
  rm -rf "$work"
  teardown_topology
  say "recorded $name: $(grep -c '' "$target/conntrack-events.txt") conntrack events, $(grep -c '' "$target/expect-events.txt") expectation events"
}

main() {
  local runs=() run failed=()
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --out-dir)
        [ "$#" -ge 2 ] || die "--out-dir needs a folder"
        OUT_DIR=$2
        shift 2
        ;;
      --out-dir=*)
        OUT_DIR=${1#--out-dir=}
        shift
        ;;
      -*) die "unknown option $1" ;;
      *)
        runs+=("$1")
        shift
        ;;
    esac
  done
  check_prerequisites
  choose_listener_priority
  mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
  OUT_DIR=$(cd "$OUT_DIR" && pwd)
  say "listeners and captures run with priority: $PRIORITY_NAME; recordings go to $OUT_DIR"
  WORK_ROOT=$(mktemp -d /tmp/pcc-record.XXXXXX)
  [ "${#runs[@]}" -gt 0 ] || runs=("${DEFAULT_RUNS[@]}")
  for run in "${runs[@]}"; do
    local scenario=${run%%:*} nat=${NAT:-}
    [ "$run" != "$scenario" ] && nat=${run#*:}
    SERVER_PID=""
    if ! record_scenario "$scenario" "$nat"; then
      failed+=("$run")
      say "FAILED: $run"
    fi
    stop_all_background
    teardown_topology
  done
  if [ "${#failed[@]}" -gt 0 ]; then
    say "failed: ${failed[*]}"
    exit 1
  fi
  say "all ${#runs[@]} recordings done"
}

main "$@"
