"""The balancer's control socket: versioned JSON lines over a unix socket (protocol.py), the non-blocking
server the run loop polls between packet batches (server.py) and the client lbadm uses (client.py)."""
