# A greenlet parked in recv is killed; main reads the data that comes
# after with the same socket.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
def reader():
    try:
        s.recv(10)
    finally:
        L.append("reader unwinds")
g = gevent.spawn(reader)
gevent.sleep(0)
g.kill()
L.append("killed dead=%s" % g.dead)
c.sendall(b"data")
L.append("main got %s" % s.recv(10).decode())
def reader2():
    L.append("reader2 got %s" % s.recv(10).decode())
g2 = gevent.spawn(reader2)
gevent.sleep(0)
c.sendall(b"more")
g2.join()
print(L)
