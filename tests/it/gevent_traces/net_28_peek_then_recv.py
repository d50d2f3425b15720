# recv with MSG_PEEK parks until data comes, returns it without consuming;
# recv then returns the same bytes.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
def w():
    L.append("writer")
    c.sendall(b"peekaboo")
gevent.spawn(w)
L.append("peek %s" % s.recv(4, socket.MSG_PEEK).decode())
L.append("peek %s" % s.recv(100, socket.MSG_PEEK).decode())
L.append("recv %s" % s.recv(100).decode())
print(L)
