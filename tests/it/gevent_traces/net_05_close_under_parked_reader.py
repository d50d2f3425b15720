# One greenlet parks in recv; another closes the socket. What the reader
# sees, and what the peer sees.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
def reader():
    try:
        L.append("reader got %r" % s.recv(10))
    except OSError as e:
        L.append("reader error errno=%s" % e.errno)
g = gevent.spawn(reader)
gevent.sleep(0)
s.close()
L.append("closed")
g.join()
L.append("peer recv %r" % c.recv(10))
print(L)
