# One greenlet parked reading, another writing a large buffer on the same
# socket; the peer echoes back what it reads.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
N = 4 << 20
def echo():
    n = 0
    while n < N:
        d = s.recv(65536)
        s.sendall(d)
        n += len(d)
    L.append("echo done")
def writer():
    c.sendall(b"z" * N)
    L.append("writer done")
def reader():
    n = 0
    while n < N:
        n += len(c.recv(65536))
    L.append("reader done %d" % n)
gs = [gevent.spawn(reader), gevent.spawn(writer), gevent.spawn(echo)]
gevent.joinall(gs)
print(sorted(L))
