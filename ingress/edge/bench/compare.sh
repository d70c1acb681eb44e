#!/usr/bin/env bash
# compare.sh: proxy throughput and tail latency of the edge against nginx
# (and a tuned httputil.ReverseProxy) in front of the same tiny Go upstream,
# measured with wrk in one run on this machine.
#
#   bash ingress/edge/bench/compare.sh            # defaults below
#   DURATION=10s CONNS=64 THREADS=2 ROUNDS=3 NGINX_WORKERS=auto SIZE=13 bash ingress/edge/bench/compare.sh
#   WITH_NETHTTP=1 ...   also measures the edge with DisableConnTakeover ("edge-nh")
#
# Fairness: all three proxies talk HTTP/1.1 with keep-alive to the same
# upstream process; nginx gets "keepalive 256" upstream connections,
# access_log off, and worker_processes NGINX_WORKERS (default auto, i.e. one
# per core: nginx at full strength; set 1 to compare with a single worker).
# The edge and the ReverseProxy run with GOMAXPROCS = number of cores
# (EDGE_GOMAXPROCS=1 pins the edge to one). wrk,
# the proxy under test and the upstream share the machine's cores, so the
# figures are relative, not absolute. Each round runs every proxy once, in
# alternating order, after a 2 s warm-up; the script prints every round and
# the median ratio. Needs: go, nginx, wrk (apt-get install -y nginx-light wrk).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
SIZE=${SIZE:-13}
EDGE_GOMAXPROCS=${EDGE_GOMAXPROCS:-}
HOST=bench.localhost

here=$(cd "$(dirname "$0")" && pwd)
for tool in go nginx wrk; do
	command -v "$tool" >/dev/null || { echo "compare.sh: $tool not found (apt-get install -y nginx-light wrk)" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

(cd "$here" && go build -o "$tmp/bench" .)

# start NAME ARGS...: runs the bench binary in the background and waits for
# its "listening ADDR" line; sets $addr.
start() {
	local name=$1; shift
	"$tmp/bench" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pids+=($!)
	for _ in $(seq 200); do
		addr=$(awk '/^listening/ {print $2}' "$tmp/$name.out")
		[ -n "$addr" ] && return 0
		sleep 0.05
	done
	echo "compare.sh: $name did not start: $(cat "$tmp/$name.err")" >&2
	exit 1
}

start upstream upstream -size "$SIZE"; upstream=$addr
GOMAXPROCS=$EDGE_GOMAXPROCS start edge edge -upstream "$upstream" -host "$HOST"; edge=$addr
start stdproxy stdproxy -upstream "$upstream"; stdproxy=$addr
edgenh=
if [ -n "${WITH_NETHTTP:-}" ]; then
	GOMAXPROCS=$EDGE_GOMAXPROCS start edgenh edge -no-takeover -upstream "$upstream" -host "$HOST"; edgenh=$addr
fi

nport=$("$tmp/bench" freeport)
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes $NGINX_WORKERS;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	upstream up {
		server $upstream;
		keepalive 256;
	}
	server {
		listen 127.0.0.1:$nport;
		location / {
			proxy_pass http://up;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto \$scheme;
			proxy_set_header X-Forwarded-Host \$host;
		}
	}
}
CONF
nginx -p "$tmp/nginx" -e "$tmp/nginx/logs/error.log" -c "$tmp/nginx/nginx.conf" &
pids+=($!)
nginx=127.0.0.1:$nport
for _ in $(seq 200); do
	curl -fs -o /dev/null -H "Host: $HOST" "http://$nginx/" 2>/dev/null && break
	sleep 0.05
done

for target in "$nginx" "$edge" "$stdproxy" $edgenh; do
	body=$(curl -fsS -H "Host: $HOST" "http://$target/")
	[ "${body:0:5}" = hello ] || { echo "compare.sh: $target answered '$body'" >&2; exit 1; }
done

# run NAME ADDR: one wrk run; prints "req/s p99_us".
run() {
	wrk -t"$THREADS" -c"$CONNS" -d2s -H "Host: $HOST" "http://$2/" >/dev/null
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Host: $HOST" "http://$2/" >"$tmp/wrk.$1"
	local rps p99 errs
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.$1")
	p99=$(awk '$1 == "99%" {v=$2; u=v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u);
		m = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : 0; printf "%.0f", v*m}' "$tmp/wrk.$1")
	errs=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/wrk.$1")
	[ -z "$errs" ] || echo "  warning ($1): $errs" >&2
	echo "$rps $p99"
}

echo "cores: $(nproc)  wrk -t$THREADS -c$CONNS -d$DURATION --latency  body: $SIZE bytes  nginx workers: $NGINX_WORKERS  edge GOMAXPROCS: ${EDGE_GOMAXPROCS:-$(nproc)}  ($(nginx -v 2>&1 | sed 's/.*: //'), $(go version | awk '{print $3}'))"
printf '%-6s %-10s %12s %10s\n' round proxy req/s p99_us
ratios_rps=(); ratios_p99=(); std_rps=()
for round in $(seq "$ROUNDS"); do
	if (( round % 2 )); then order="nginx edge stdproxy"; else order="stdproxy edge nginx"; fi
	[ -z "$edgenh" ] || order="$order edge-nh"
	declare -A res=()
	for name in $order; do
		case $name in nginx) a=$nginx ;; edge) a=$edge ;; stdproxy) a=$stdproxy ;; edge-nh) a=$edgenh ;; esac
		res[$name]=$(run "$name" "$a")
		printf '%-6s %-10s %12s %10s\n' "$round" "$name" ${res[$name]}
	done
	read -r n_rps n_p99 <<<"${res[nginx]}"
	read -r e_rps e_p99 <<<"${res[edge]}"
	read -r s_rps s_p99 <<<"${res[stdproxy]}"
	ratios_rps+=("$(awk -v a="$e_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a/b}')")
	ratios_p99+=("$(awk -v a="$n_p99" -v b="$e_p99" 'BEGIN {printf "%.2f", a/b}')")
	std_rps+=("$(awk -v a="$s_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a/b}')")
	unset res
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "edge/nginx throughput per round: ${ratios_rps[*]}  median $(median "${ratios_rps[@]}")"
echo "nginx p99/edge p99 per round:    ${ratios_p99[*]}  median $(median "${ratios_p99[@]}")  (>= 1 means the edge's p99 is lower)"
echo "stdproxy/nginx throughput:       ${std_rps[*]}  median $(median "${std_rps[@]}")"
