"""The benchmark: the product against its physical floor, in one run on one machine.

``python -m scripts.bench`` (or ``make bench``) measures, in the same run:

- SGD round trip and print latency through one replica, against an aio-pika RPC
  plus a websockets echo, and an AMQP hop plus a WebSocket send;
- print throughput of 1 KiB labels to 100 printers, against aio-pika's
  consume-and-ack rate;
- idle printers held by one replica (memory and CPU), against websockets alone;
- a reconnect storm after a replica dies, against WebSocket handshakes per second.

See ``docs/performance.md`` for the figures and how to read them.
"""
