"""The embedded stack: Tansu broker + redis-server + the services, as local processes."""
