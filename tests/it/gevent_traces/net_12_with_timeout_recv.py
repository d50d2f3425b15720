# with_timeout around recv (no socket timeout): Timeout; the bytes that
# come later are all read; the socket timeout and an outer Timeout:
# the one that fires first wins.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
r = gevent.with_timeout(0.03, s.recv, 10, timeout_value="elapsed")
L.append("first %s" % r)
c.sendall(b"xyz")
L.append("then %s" % s.recv(10).decode())
s.settimeout(0.02)
try:
    gevent.with_timeout(0.5, s.recv, 10)
except socket.timeout:
    L.append("socket timeout fired first")
except gevent.Timeout:
    L.append("outer fired first")
s.settimeout(0.5)
try:
    gevent.with_timeout(0.02, s.recv, 10)
except socket.timeout:
    L.append("socket timeout fired first")
except gevent.Timeout:
    L.append("outer fired first")
print(L)
