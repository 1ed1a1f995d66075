#!/usr/bin/env bash
# Make sure a local RabbitMQ answers on 127.0.0.1:5672 (guest/guest).
# Installs Debian's rabbitmq-server if it is missing, starts it if it is stopped (there
# is no systemd here: `rabbitmq-server -detached`), and waits until the node is ready.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
  echo "rabbitmq: installing Debian's rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends rabbitmq-server
fi
export PATH="$PATH:/usr/sbin:/sbin"

# Debian's wrapper runs the node through `su rabbitmq`, whose limit is 1,024 open files
# (about 830 AMQP connections); give it room before it starts.
limits=/etc/security/limits.d/rabbitmq.conf
if [ ! -f "$limits" ]; then
  echo "rabbitmq - nofile 65536" | as_root tee "$limits" >/dev/null || true
fi

if rabbitmqctl -q await_startup --timeout 2 >/dev/null 2>&1; then
  echo "rabbitmq: already running"
else
  if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    echo "rabbitmq: starting"
    as_root rabbitmq-server -detached
  fi

# `await_startup` fails at once (exit 69) until the node has registered, so retry it;
# `rabbitmq-diagnostics ping` answers before the node is ready and proves nothing.
ready=no
for _ in $(seq 1 90); do
  if rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then
    ready=yes
    break
  fi
  sleep 1
done
if [ "$ready" != yes ]; then
  echo "rabbitmq: did not become ready in time" >&2
  exit 1
fi
echo "rabbitmq: ready"
fi

# The tests follow consumers coming and going through the event exchange plugin
# (`amq.rabbitmq.event`); enabling it on a running node is idempotent and quick.
# `--without-test-plugins` (what `make bench` uses) turns it off instead: it publishes
# an event for every binding, consumer and queue change, which a production broker
# does not pay and the benchmark should not measure.
if [ "${1:-}" = "--without-test-plugins" ]; then
  if rabbitmq-plugins -q list -e rabbitmq_event_exchange 2>/dev/null | grep -q event_exchange; then
    as_root rabbitmq-plugins -q disable rabbitmq_event_exchange >/dev/null
    echo "rabbitmq: rabbitmq_event_exchange off for the benchmark (make rabbitmq turns it on)"
  fi
elif ! rabbitmq-plugins -q list -e rabbitmq_event_exchange 2>/dev/null | grep -q event_exchange; then
  as_root rabbitmq-plugins -q enable rabbitmq_event_exchange >/dev/null
fi
