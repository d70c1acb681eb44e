#!/usr/bin/env bash
# compare.sh: throughput and tail latency of the edge against nginx,
# measured with wrk in one run on this machine, in one of two modes:
#
#   MODE=function (default): the edge proxying to a tiny Go upstream, against
#     nginx (and a tuned httputil.ReverseProxy) in front of the same upstream.
#   MODE=static: the edge serving one file of SIZE bytes (default 10240) of
#     a preview whose assets are in versitygw (s3://, cache warm), against
#     nginx serving the same bytes from disk (sendfile on, keep-alive,
#     access_log off, open_file_cache on). Needs GLIMPSE_VERSITYGW_BIN (the
#     binary .ci/run builds into ~/.cache/glimpse-ci/bin).
#
#   bash ingress/edge/bench/compare.sh            # function mode, defaults below
#   DURATION=10s CONNS=64 THREADS=2 ROUNDS=3 NGINX_WORKERS=auto SIZE=13 bash ingress/edge/bench/compare.sh
#   GLIMPSE_VERSITYGW_BIN=~/.cache/glimpse-ci/bin/versitygw-v1.8.0 MODE=static bash ingress/edge/bench/compare.sh
#   WITH_NETHTTP=1 ...   also measures the edge with DisableConnTakeover ("edge-nh")
#   WITH_FLOOR=1 ...     static mode: also measures "gofloor", a Go server that
#                        writes a prerendered response per request and does
#                        nothing else: what any Go server can reach here
#   EDGE_CPUPROFILE=FILE ...  writes a CPU profile of the edge's first 10 s
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
# the median ratio; static mode runs only the edge and nginx, alternating
# (edge, nginx, nginx, edge, ...) so that noise from other work on the
# machine hits both. Every run prints the 1-minute load average at its end.
# Needs: go, nginx, wrk (apt-get install -y nginx-light wrk).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
MODE=${MODE:-function}
case $MODE in
function) SIZE=${SIZE:-13}; URLPATH=/ ;;
static) SIZE=${SIZE:-10240}; URLPATH=/asset.txt ;;
*) echo "compare.sh: MODE=$MODE: want function or static" >&2; exit 2 ;;
esac
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
	declare -g "pid_$name=$!"
	for _ in $(seq 200); do
		addr=$(awk '/^listening/ {print $2}' "$tmp/$name.out")
		[ -n "$addr" ] && return 0
		sleep 0.05
	done
	echo "compare.sh: $name did not start: $(cat "$tmp/$name.err")" >&2
	exit 1
}

prof=()
[ -z "${EDGE_CPUPROFILE:-}" ] || prof=(-cpuprofile "$EDGE_CPUPROFILE")
edgenh=
gofloor=
stdproxy=
if [ "$MODE" = function ]; then
	start upstream upstream -size "$SIZE"; upstream=$addr
	GOMAXPROCS=$EDGE_GOMAXPROCS start edge edge "${prof[@]}" -upstream "$upstream" -host "$HOST"; edge=$addr
	start stdproxy stdproxy -upstream "$upstream"; stdproxy=$addr
	if [ -n "${WITH_NETHTTP:-}" ]; then
		GOMAXPROCS=$EDGE_GOMAXPROCS start edgenh edge -no-takeover -upstream "$upstream" -host "$HOST"; edgenh=$addr
	fi
else
	[ -x "${GLIMPSE_VERSITYGW_BIN:-}" ] || { echo "compare.sh: MODE=static needs GLIMPSE_VERSITYGW_BIN (see .ci/run)" >&2; exit 1; }
	mkdir -p "$tmp/s3" "$tmp/site"
	chmod 755 "$tmp" "$tmp/site" # nginx's workers drop root's rights
	s3port=$("$tmp/bench" freeport)
	export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-key
	"$GLIMPSE_VERSITYGW_BIN" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" \
		--port "127.0.0.1:$s3port" --health /health --quiet --keep-alive posix "$tmp/s3" >"$tmp/versitygw.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 200); do
		curl -fs -o /dev/null "http://127.0.0.1:$s3port/health" && break
		sleep 0.05
	done
	assets="s3://bench?endpoint=http://127.0.0.1:$s3port&pathStyle=true&region=us-east-1"
	GOMAXPROCS=$EDGE_GOMAXPROCS start edge static "${prof[@]}" -assets "$assets" -dir "$tmp/site" -size "$SIZE" -host "$HOST"; edge=$addr
	if [ -n "${WITH_FLOOR:-}" ]; then
		GOMAXPROCS=$EDGE_GOMAXPROCS start gofloor floor -size "$SIZE"; gofloor=$addr
	fi
	if [ -n "${WITH_NETHTTP:-}" ]; then
		GOMAXPROCS=$EDGE_GOMAXPROCS start edgenh static -no-takeover -assets "$assets" -dir "$tmp/site" -size "$SIZE" -host "$HOST"; edgenh=$addr
	fi
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
	keepalive_timeout 75s;
	keepalive_requests 1000000;
$(if [ "$MODE" = function ]; then cat <<FN
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
FN
else cat <<ST
	sendfile on;
	tcp_nopush on;
	open_file_cache max=1000 inactive=60s;
	types { text/plain txt; }
	server {
		listen 127.0.0.1:$nport;
		root $tmp/site;
		location / { }
	}
ST
fi)
}
CONF
nginx -p "$tmp/nginx" -e "$tmp/nginx/logs/error.log" -c "$tmp/nginx/nginx.conf" &
pids+=($!)
nginx_master=$!
nginx=127.0.0.1:$nport
for _ in $(seq 200); do
	curl -fs -o /dev/null -H "Host: $HOST" "http://$nginx$URLPATH" 2>/dev/null && break
	sleep 0.05
done

if [ "$MODE" = function ]; then
	for target in "$nginx" "$edge" "$stdproxy" $edgenh; do
		body=$(curl -fsS -H "Host: $HOST" "http://$target/")
		[ "${body:0:5}" = hello ] || { echo "compare.sh: $target answered '$body'" >&2; exit 1; }
	done
else
	for target in "$nginx" "$edge" $edgenh; do
		curl -fsS -o "$tmp/got" -H "Host: $HOST" "http://$target$URLPATH"
		cmp -s "$tmp/got" "$tmp/site/asset.txt" || { echo "compare.sh: $target served other bytes than $tmp/site/asset.txt" >&2; exit 1; }
	done
fi

# cputicks PID...: user+system clock ticks the processes have used.
cputicks() {
	local sum=0 f
	for p in "$@"; do
		read -r -a f <"/proc/$p/stat"
		sum=$((sum + f[13] + f[14]))
	done
	echo "$sum"
}

# run NAME ADDR PID...: one wrk run; prints "req/s p99_us load1 cpu_us"
# where cpu_us is the CPU time the server's processes PID... spent per
# request (user + system), a figure less sensitive than req/s to other
# work on the machine.
run() {
	local name=$1 target=$2
	shift 2
	wrk -t"$THREADS" -c"$CONNS" -d2s -H "Host: $HOST" "http://$target$URLPATH" >/dev/null
	local c0
	c0=$(cputicks "$@")
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Host: $HOST" "http://$target$URLPATH" >"$tmp/wrk.$name"
	local c1 reqs
	c1=$(cputicks "$@")
	reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.$name")
	set -- "$name"
	local rps p99 errs
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.$1")
	p99=$(awk '$1 == "99%" {v=$2; u=v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u);
		m = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : 0; printf "%.0f", v*m}' "$tmp/wrk.$1")
	errs=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/wrk.$1")
	[ -z "$errs" ] || echo "  warning ($1): $errs" >&2
	echo "$rps $p99 $(cut -d' ' -f1 /proc/loadavg) $(awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN {printf "%.1f", c / t * 1e6 / n}')"
}

echo "mode: $MODE $URLPATH  cores: $(nproc)  wrk -t$THREADS -c$CONNS -d$DURATION --latency  body: $SIZE bytes  nginx workers: $NGINX_WORKERS  edge GOMAXPROCS: ${EDGE_GOMAXPROCS:-$(nproc)}  ($(nginx -v 2>&1 | sed 's/.*: //'), $(go version | awk '{print $3}'))"
nginx_workers=$(pgrep -P "$nginx_master" | tr '\n' ' ')
printf '%-6s %-10s %12s %10s %6s %8s\n' round server req/s p99_us load1 cpu_us
ratios_rps=(); ratios_p99=(); std_rps=(); ratios_cpu=(); floor_rps=()
for round in $(seq "$ROUNDS"); do
	if [ "$MODE" = static ]; then
		if (( round % 2 )); then order="edge nginx"; else order="nginx edge"; fi
	elif (( round % 2 )); then order="nginx edge stdproxy"; else order="stdproxy edge nginx"; fi
	[ -z "$edgenh" ] || order="$order edge-nh"
	[ -z "$gofloor" ] || order="$order gofloor"
	declare -A res=()
	for name in $order; do
		case $name in
		nginx) a=$nginx; ps=$nginx_workers ;;
		edge) a=$edge; ps=$pid_edge ;;
		stdproxy) a=$stdproxy; ps=$pid_stdproxy ;;
		edge-nh) a=$edgenh; ps=$pid_edgenh ;;
		gofloor) a=$gofloor; ps=$pid_gofloor ;;
		esac
		# shellcheck disable=SC2086 # ps is a list of pids
		res[$name]=$(run "$name" "$a" $ps)
		printf '%-6s %-10s %12s %10s %6s %8s\n' "$round" "$name" ${res[$name]}
	done
	read -r n_rps n_p99 _ n_cpu <<<"${res[nginx]}"
	read -r e_rps e_p99 _ e_cpu <<<"${res[edge]}"
	ratios_cpu+=("$(awk -v a="$n_cpu" -v b="$e_cpu" 'BEGIN {printf "%.2f", a/b}')")
	ratios_rps+=("$(awk -v a="$e_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a/b}')")
	ratios_p99+=("$(awk -v a="$n_p99" -v b="$e_p99" 'BEGIN {printf "%.2f", a/b}')")
	if [ -n "$stdproxy" ]; then
		read -r s_rps s_p99 _ <<<"${res[stdproxy]}"
		std_rps+=("$(awk -v a="$s_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a/b}')")
	fi
	if [ -n "$gofloor" ]; then
		read -r f_rps _ <<<"${res[gofloor]}"
		floor_rps+=("$(awk -v a="$f_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a/b}')")
	fi
	unset res
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "edge/nginx throughput per round: ${ratios_rps[*]}  median $(median "${ratios_rps[@]}")"
echo "nginx/edge CPU per request:      ${ratios_cpu[*]}  median $(median "${ratios_cpu[@]}")  (>= 1 means the edge spends less; nginx: its workers)"
echo "nginx p99/edge p99 per round:    ${ratios_p99[*]}  median $(median "${ratios_p99[@]}")  (>= 1 means the edge's p99 is lower)"
[ -z "$stdproxy" ] || echo "stdproxy/nginx throughput:       ${std_rps[*]}  median $(median "${std_rps[@]}")"
[ -z "$gofloor" ] || echo "gofloor/nginx throughput:        ${floor_rps[*]}  median $(median "${floor_rps[@]}")"
