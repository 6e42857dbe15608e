"""Tools for a lab of servers, each a client of them: the ``ls`` listing, the Prometheus exporter, VPN configs."""
