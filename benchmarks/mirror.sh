#!/bin/bash
# Mirroring throughput: `strata pull` of one layer from a repository served by nginx on loopback
# (its objects fetched into an empty mirror, four at a time, verified, then copied to a local
# repository), with an old strata binary and a new one, against `curl --parallel --parallel-max 4`
# fetching the same object files. Two layers: many small files and a few large ones; over http://
# and https:// (HTTP/2; the old client refuses https). Beside them, two clients of the harness in
# benchmarks/http-clients (its own package, built here in release): AsyncHTTPClient and libcurl easy
# handles on 4 threads, each fetching the same objects 4 at a time, SHA-256 of each body as it
# streams, written to a file, no store — the same program, so only the HTTP client differs. Prints a
# Markdown table of the best of RUNS runs, and the part of strata's time spent without the network
# (the same pull with the mirror full); the load average before and after goes to stderr.
# A second table compares servers: the same pulls by the new client over http from `strata repo serve`
# of OLD_STRATA (the hand-written server), of NEW_STRATA (StrataServer, on Hummingbird) and from nginx.
#
# Usage: benchmarks/mirror.sh OLD_STRATA [NEW_STRATA]   (OLD_STRATA '-': no old client column nor old
#        server; NEW_STRATA: this tree's release build; RUNS=3, LAYERS="small large",
#        TRANSPORTS="http https", SERVERS="old new nginx" (an empty TRANSPORTS or SERVERS leaves that
#        table out); HARNESS: a built http-mirror, else benchmarks/http-clients is built)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
old=$1
new=${2:-}
if [ -z "$new" ]; then
    swift build -c release -q --product strata
    new="$(swift build -c release --show-bin-path)/strata"
fi
harness=${HARNESS:-}
if [ -z "$harness" ]; then
    (cd benchmarks/http-clients && swift build -c release -q --product http-mirror)
    harness="$(cd benchmarks/http-clients && swift build -c release --show-bin-path)/http-mirror"
fi
runs=${RUNS:-3}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
nginx=/usr/sbin/nginx
[ -x "$nginx" ] || nginx=/tmp/strata-test-nginx/usr/sbin/nginx   # unpacked by the tests

work=$(mktemp -d /tmp/bench-mirror.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

# The served repository: 'small', 4,000 files of 16 KiB; 'large', 4 files of 64 MiB (random, distinct).
export STRATA_HOME="$work/server-home"
"$new" repo init "$work/repo" >/dev/null
"$new" repo add main "$work/repo"
mkdir -p "$work/small/data" "$work/large/data"
head -c $((4000 * 16384)) /dev/urandom | split -b 16384 -a 4 - "$work/small/data/f"
for i in 1 2 3 4; do head -c $((64 << 20)) /dev/urandom > "$work/large/data/f$i"; done
"$new" layer import main "$work/small" --name small --version 1 >/dev/null
"$new" layer import main "$work/large" --name large --version 1 >/dev/null
rm -rf "$work/small" "$work/large"

# nginx on two ports: http, and https with HTTP/2 (a certificate of a CA made here).
(cd "$work" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 1 -subj '/CN=bench CA' \
    && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1' \
    && printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > server.ext \
    && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile server.ext) >/dev/null 2>&1
port=$((20000 + RANDOM % 20000)); tls_port=$((port + 1))
cat > "$work/nginx.conf" <<CONF
daemon off; master_process off; user root; pid $work/nginx.pid; error_log $work/nginx-error.log;
events {}
http {
    access_log off;
    client_body_temp_path $work/t1; proxy_temp_path $work/t2; fastcgi_temp_path $work/t3; uwsgi_temp_path $work/t4; scgi_temp_path $work/t5;
    server { listen 127.0.0.1:$port; root $work/repo; }
    server { listen 127.0.0.1:$tls_port ssl http2; ssl_certificate $work/server.pem; ssl_certificate_key $work/server.key; root $work/repo; }
}
CONF
"$nginx" -p "$work" -e "$work/nginx-error.log" -c "$work/nginx.conf" & pids+=($!)
sleep 1
export CURL_CA_BUNDLE="$work/ca.pem"

# One pull into a fresh home and local repository; prints milliseconds (and the no-network time in $local_ms).
pull() { # STRATA URL LAYER
    local home="$work/client-$RANDOM$RANDOM"
    STRATA_HOME="$home" "$1" repo init "$home/local" >/dev/null
    STRATA_HOME="$home" "$1" repo add remote "$2" >/dev/null
    local start; start=$(now)
    STRATA_HOME="$home" "$1" pull --layer "$3" remote "$home/local" >/dev/null
    local took; took=$(ms "$start" "$(now)")
    STRATA_HOME="$home" "$1" repo init "$home/local2" >/dev/null
    start=$(now)
    STRATA_HOME="$home" "$1" pull --layer "$3" remote "$home/local2" >/dev/null
    local_ms=$(ms "$start" "$(now)")
    rm -rf "$home"
    echo "$took $local_ms"
}

# curl fetching every object of a layer (the mirror of a pull tells which) into files, 4 at a time.
fetch_with_curl() { # URL OBJECTS-LIST
    rm -rf "$work/curl-out" && mkdir "$work/curl-out"
    awk -v base="$1" -v out="$work/curl-out" '{ print "url = \"" base "/" $0 "\"\noutput = \"" out "/" NR "\"" }' "$2" > "$work/curl.config"
    local start; start=$(now)
    curl -s -f --no-progress-meter --parallel --parallel-max 4 -K "$work/curl.config"
    ms "$start" "$(now)"
}

# The harness fetching every object of a layer with one of its clients.
fetch_with_harness() { # CLIENT URL OBJECTS-LIST
    rm -rf "$work/harness-out"
    local start; start=$(now)
    "$harness" --client "$1" --connections 4 --out "$work/harness-out" "$2" "$3" >/dev/null
    ms "$start" "$(now)"
}

best() { sort -n | head -1; }
echo "| layer | bytes | transport | old client (ms) | new client, libcurl (ms) | harness: AsyncHTTPClient (ms) | harness: libcurl (ms) | curl --parallel-max 4 (ms) | strata without network, new (ms) |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
for layer in ${LAYERS:-small large}; do
    [ -n "${TRANSPORTS-http https}" ] || break
    # The layer's objects: those a pull leaves in a fresh mirror.
    home="$work/list-home"
    STRATA_HOME="$home" "$new" repo init "$home/local" >/dev/null
    STRATA_HOME="$home" "$new" repo add remote "http://127.0.0.1:$port" >/dev/null
    STRATA_HOME="$home" "$new" pull --layer "$layer" remote "$home/local" >/dev/null
    (cd "$home/mirrors/remote" && find objects -type f | sort) > "$work/$layer.objects"
    bytes=$(cd "$home/mirrors/remote" && find objects -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
    rm -rf "$home"
    for transport in ${TRANSPORTS-http https}; do
        if [ "$transport" = http ]; then url="http://127.0.0.1:$port"; else url="https://127.0.0.1:$tls_port"; fi
        o="" n="" c="" l="" a="" h=""
        for run in $(seq "$runs"); do
            if [ "$transport" = http ] && [ "$old" != - ]; then o+="$(pull "$old" "$url" "$layer" | cut -d' ' -f1)"$'\n'; fi
            read -r t local_ms < <(pull "$new" "$url" "$layer"); n+="$t"$'\n'; l+="$local_ms"$'\n'
            a+="$(fetch_with_harness ahc "$url" "$work/$layer.objects")"$'\n'
            h+="$(fetch_with_harness curl "$url" "$work/$layer.objects")"$'\n'
            c+="$(fetch_with_curl "$url" "$work/$layer.objects")"$'\n'
        done
        o=$(printf '%s' "$o" | best); n=$(printf '%s' "$n" | best); c=$(printf '%s' "$c" | best); l=$(printf '%s' "$l" | best)
        a=$(printf '%s' "$a" | best); h=$(printf '%s' "$h" | best)
        if [ "$old" = - ]; then o="—"; fi
        echo "| $layer ($(wc -l < "$work/$layer.objects") objects) | $bytes | $transport | ${o:-refused} | $n | $a | $h | $c | $l |"
    done
done

# `strata repo serve` of a binary on a free port, in the background; sets url and server_pid.
serve() { # STRATA
    rm -f "$work/serve.url"
    "$1" repo serve "$work/repo" --listen 127.0.0.1:0 --quiet > "$work/serve.url" & server_pid=$!; pids+=($!)
    for _ in $(seq 100); do [ -s "$work/serve.url" ] && break; sleep 0.1; done
    url=$(sed 's#/$##' "$work/serve.url")
}

[ -n "${SERVERS-old new nginx}" ] || exit 0
echo
echo "| layer | server | pull by the new client (ms) | ratio to nginx |"
echo "|---|---|---:|---:|"
for layer in ${LAYERS:-small large}; do
    declare -A took=()
    for server in ${SERVERS-old new nginx}; do
        [ "$server:$old" != old:- ] || continue
        case $server in
            old) serve "$old" ;;
            new) serve "$new" ;;
            nginx) url="http://127.0.0.1:$port" ;;
        esac
        t=""
        for run in $(seq "$runs"); do t+="$(pull "$new" "$url" "$layer" | cut -d' ' -f1)"$'\n'; done
        took[$server]=$(printf '%s' "$t" | best)
        if [ "$server" != nginx ]; then kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; fi
    done
    for server in ${SERVERS-old new nginx}; do
        [ "$server:$old" != old:- ] || continue
        case $server in
            old) name="old hand-written repo serve" ;;
            new) name="repo serve on Hummingbird" ;;
            nginx) name="nginx" ;;
        esac
        ratio=""
        [ -n "${took[nginx]:-}" ] && ratio=$(awk -v a="${took[$server]}" -v b="${took[nginx]}" 'BEGIN { printf "%.2f", a / b }')
        echo "| $layer | $name | ${took[$server]} | $ratio |"
    done
    unset took
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
