# Client half-closes; server reads data then EOF, then writes back and
# closes; client reads the reply, then EOF (twice).
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
def server():
    s, _ = lis.accept()
    buf = b""
    while True:
        d = s.recv(4)
        L.append("server read %r" % d)
        if not d:
            break
        buf += d
    s.sendall(buf.upper())
    L.append("server replied")
    s.close()
g = gevent.spawn(server)
c = socket.create_connection(lis.getsockname())
c.sendall(b"hello")
c.shutdown(socket.SHUT_WR)
L.append("client shut wr")
out = b""
while True:
    d = c.recv(100)
    L.append("client read %r" % d)
    if not d:
        break
L.append("client again %r" % c.recv(100))
g.join()
print(L)
