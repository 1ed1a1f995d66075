"""The WebLink gateway: terminates printer WebSockets and bridges them to RabbitMQ."""
