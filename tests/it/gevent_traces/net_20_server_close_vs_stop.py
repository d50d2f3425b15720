# close() stops accepting but leaves the running handler alone: it
# finishes and answers; a new connection is refused.
import gevent
from gevent import socket
from gevent.server import StreamServer
L = []
def handle(sock, addr):
    sock.recv(1)
    gevent.sleep(0.05)
    sock.sendall(b"late")
    L.append("handler done")
srv = StreamServer(("127.0.0.1", 0), handle); srv.start()
addr = srv.address
c = socket.create_connection(addr); c.sendall(b"x")
gevent.sleep(0.01)
srv.close()
L.append("closed")
try:
    socket.create_connection(addr)
except OSError as e:
    L.append("new %s" % type(e).__name__)
L.append("client got %r" % c.recv(10))
gevent.sleep(0.01)
L.append("after")
print(L)
