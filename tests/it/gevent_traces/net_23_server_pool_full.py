# StreamServer with a pool of 1: a second client's handler does not start
# until the first handler returns.
import gevent
from gevent import socket
from gevent.pool import Pool
from gevent.server import StreamServer
L = []
def handle(sock, addr):
    k = sock.recv(1).decode()
    L.append("h%s start" % k)
    gevent.sleep(0.05)
    L.append("h%s end" % k)
srv = StreamServer(("127.0.0.1", 0), handle, spawn=Pool(1)); srv.start()
c1 = socket.create_connection(srv.address); c1.sendall(b"1")
gevent.sleep(0.01)
c2 = socket.create_connection(srv.address); c2.sendall(b"2")
L.append("c2 connected")
gevent.sleep(0.2)
srv.stop()
print(L)
