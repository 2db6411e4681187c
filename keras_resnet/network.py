"""Whether the internet is reachable, checked in seconds: downloads (TFDS datasets, keras.applications
weights) fail at once with a clear message offline instead of retrying for minutes."""

import socket


def online(host="storage.googleapis.com", port=443, timeout=3.0):
    """True when `host:port` accepts a TCP connection within `timeout` seconds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False
