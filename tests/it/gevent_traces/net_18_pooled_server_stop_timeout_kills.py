# StreamServer with a pool (spawn=10): stop(timeout) with two live handlers: the fast one finishes within the
# grace, the slow one is killed (its finally runs) before stop returns;
# the clients see end of stream; new connections are refused.
import gevent
from gevent import socket
from gevent.server import StreamServer
L = []
def handle(sock, addr):
    kind = sock.recv(4).decode()
    try:
        gevent.sleep(0.05 if kind == "fast" else 10)
        sock.sendall(b"bye")
        L.append("%s done" % kind)
    except gevent.GreenletExit:
        L.append("%s killed" % kind)
        raise
srv = StreamServer(("127.0.0.1", 0), handle, spawn=10); srv.start()
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
