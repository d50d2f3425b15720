# recv(0): on an open connection with nothing to read it waits for data
# (and then returns b'' leaving the data); at end of stream b'' at once.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
def writer():
    L.append("writer runs")
    c.sendall(b"q")
gevent.spawn(writer)
L.append("recv0 %r" % s.recv(0))
L.append("then %r" % s.recv(10))
c.close()
L.append("eof recv0 %r" % s.recv(0))
L.append("eof recv %r" % s.recv(10))
print(L)
