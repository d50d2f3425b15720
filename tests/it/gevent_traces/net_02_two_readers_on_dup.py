# Two greenlets read one connection through two handles (dup); the peer
# writes two messages, one per turn. Who gets what.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
s2 = s.dup()
def reader(name, sock):
    L.append("%s parks" % name)
    L.append("%s got %s" % (name, sock.recv(10).decode()))
r1 = gevent.spawn(reader, "r1", s)
r2 = gevent.spawn(reader, "r2", s2)
gevent.sleep(0)
c.sendall(b"one")
gevent.sleep(0.05)
L.append("after one")
c.sendall(b"two")
gevent.joinall([r1, r2], timeout=1)
L.append("done")
print(L)
