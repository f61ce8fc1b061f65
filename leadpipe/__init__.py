"""leadpipe operator tooling: the ``leadpipe`` CLI, the embedded dev stack and the runtime
plumbing (settings base, Kafka clients, Faust app factory, metrics, logs) that every service
uses. Services import ``leadpipe.runtime`` and ``schemas``; never each other."""
