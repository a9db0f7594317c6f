# Sourced by the lazy-fetch benchmarks: serves a repository directory with nginx on 127.0.0.1, in the
# foreground of a background job, logging each request's URI and body bytes to DIR/access.log.
nginx=/usr/sbin/nginx
[ -x "$nginx" ] || nginx=/tmp/strata-test-nginx/usr/sbin/nginx   # unpacked by the tests

# serve_with_nginx DIR ROOT PORT: nginx's files in DIR, serving ROOT; its pid in $nginx_pid.
serve_with_nginx() {
    local dir=$1 root=$2 port=$3
    cat > "$dir/nginx.conf" <<CONF
daemon off; master_process off; user root; pid $dir/nginx.pid; error_log $dir/nginx-error.log;
events {}
http {
    log_format sent '\$request_uri \$body_bytes_sent';
    access_log $dir/access.log sent;
    client_body_temp_path $dir/t1; proxy_temp_path $dir/t2; fastcgi_temp_path $dir/t3; uwsgi_temp_path $dir/t4; scgi_temp_path $dir/t5;
    server { listen 127.0.0.1:$port; root $root; }
}
CONF
    "$nginx" -p "$dir" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" &
    nginx_pid=$!
    sleep 1
}
