# A handler that returns without closing: the client sees end of stream.
# A handler that raises: the client sees end of stream and the server
# serves the next client.
import gevent
from gevent import socket
from gevent.server import StreamServer
L = []
def handle(sock, addr):
    k = sock.recv(1)
    sock.sendall(b"ok" + k)
    if k == b"e":
        raise ValueError("boom")
srv = StreamServer(("127.0.0.1", 0), handle); srv.start()
for k in (b"a", b"e", b"b"):
    c = socket.create_connection(srv.address); c.sendall(k)
    got = b""
    while True:
        d = c.recv(10)
        if not d: break
        got += d
    L.append("client %s got %r then eof" % (k.decode(), got))
srv.stop()
print(L)
