"""systemd integration: Type=notify readiness, stopping and watchdog messages.

The daemon is given NOTIFY_SOCKET, as systemd does for a Type=notify unit, pointing at a
datagram socket the test reads. libsystemd is loaded only then, so these tests also prove
that the lazy loading works.
"""

import signal
import socket

import pytest


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield path, sock
    sock.close()


def messages_until(sock, wanted):
    """Reads notifications until one holds `wanted`; returns every one read."""
    seen = []
    while True:
        msg = sock.recv(4096).decode()
        seen.append(msg)
        if wanted in msg.split("\n"):
            return seen


def test_ready_watchdog_and_stopping(daemon, notify_socket):
    path, sock = notify_socket
    d = daemon(
        "--heartbeat-interval", "100ms", "--dead-after", "1s",
        env={"NOTIFY_SOCKET": str(path)},
    )
    # READY=1 comes once the daemon has registered, i.e. after its "ready" log line.
    seen = messages_until(sock, "READY=1")
    assert "STATUS=running" in seen[-1].split("\n")
    assert "ready:" in d.log()
    # Every heartbeat pets the watchdog.
    messages_until(sock, "WATCHDOG=1")
    d.signal(signal.SIGTERM)
    seen = messages_until(sock, "STOPPING=1")
    assert "STATUS=stopping" in seen[-1].split("\n")
    assert d.wait(timeout=10) == 0


def test_no_notify_socket_means_no_libsystemd(daemon):
    """Outside systemd the daemon does not even map libsystemd (about 1 MB resident)."""
    d = daemon()
    with open(f"/proc/{d.pid}/maps") as f:
        maps = f.read()
    assert "libsystemd" not in maps
    assert "libpq" in maps  # the check itself can see linked libraries
    assert d.stop() == 0
