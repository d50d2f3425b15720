# StreamServer WITHOUT a pool: stop(timeout) only stops accepting; the
# handlers run on (gevent's docs: "If the server does not use a pool,
# then this merely stops accepting connections").
import gevent
from gevent import socket
from gevent.server import StreamServer
L = []
def handle(sock, addr):
    kind = sock.recv(4).decode()
    try:
        gevent.sleep(0.05 if kind == "fast" else 0.5)
        sock.sendall(b"bye")
        L.append("%s done" % kind)
    except gevent.GreenletExit:
        L.append("%s killed" % kind)
        raise
srv = StreamServer(("127.0.0.1", 0), handle); srv.start()
addr = srv.address
a = socket.create_connection(addr); a.sendall(b"fast")
b = socket.create_connection(addr); b.sendall(b"slow")
gevent.sleep(0.01)
srv.stop(timeout=0.3)
L.append("stop returned")
L.append("fast client %r" % a.recv(10))
L.append("slow client %r" % b.recv(10))
try:
    socket.create_connection(addr)
except OSError as e:
    L.append("new %s" % type(e).__name__)
print(L)
