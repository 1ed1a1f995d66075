#!/bin/sh
# Render deploy/nginx/weblink.conf for Kubernetes: the servers between the
# "# upstream-servers: begin" and "# upstream-servers: end" markers are replaced by
# one server, the gateway Service ($GATEWAY_UPSTREAM, host:port); every other line
# is kept as written. Run by the init container of zebra-nginx; the paths can be
# overridden for tests.
set -eu

source=${WEBLINK_CONF_SOURCE:-/config/weblink.conf}
target=${WEBLINK_CONF_TARGET:-/etc/nginx/conf.d/weblink.conf}
upstream=${GATEWAY_UPSTREAM:?set GATEWAY_UPSTREAM to the gateway Service, host:port}

if ! grep -q '# upstream-servers: begin' "$source" \
    || ! grep -q '# upstream-servers: end' "$source"; then
    echo "render-weblink-conf: no upstream-servers markers in $source" >&2
    exit 1
fi

awk -v upstream="$upstream" '
    /# upstream-servers: end/ { skipping = 0 }
    skipping { next }
    { print }
    /# upstream-servers: begin/ {
        match($0, /^[ \t]*/)
        print substr($0, 1, RLENGTH) "server " upstream ";"
        skipping = 1
    }
' "$source" > "$target"
echo "render-weblink-conf: $target proxies to $upstream"
