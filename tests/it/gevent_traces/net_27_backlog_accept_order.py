# Three clients connect and send before anyone accepts; accept returns
# them in the order they connected; one sent and closed already: its
# data and end of stream are both there.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(8)
cs = []
for i in range(3):
    c = socket.create_connection(lis.getsockname()); c.sendall(b"c%d" % i); cs.append(c)
cs[1].close()
for i in range(3):
    s, _ = lis.accept()
    a = s.recv(10); b = s.recv(10) if i == 1 else b"-"
    L.append("accepted %s then %r" % (a.decode(), b))
print(L)
