# Greenlets A (socket 1) and B (socket 2) parked in recv; main writes to
# socket 2, then socket 1 (after a 1 ms sleep: one poll), then sleeps.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(2)
c1 = socket.create_connection(lis.getsockname()); s1, _ = lis.accept()
c2 = socket.create_connection(lis.getsockname()); s2, _ = lis.accept()
def r(name, s):
    L.append("%s got %s" % (name, s.recv(10).decode()))
ga = gevent.spawn(r, "A", s1); gb = gevent.spawn(r, "B", s2)
gevent.sleep(0.001)
c2.sendall(b"2"); c1.sendall(b"1")
L.append("main sent")
gevent.sleep(0.02)
L.append("main back")
print(L)
