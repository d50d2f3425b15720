# The peer closes (FIN, nothing unread). A first send succeeds (the peer
# answers it with a reset); after that, recv reports the reset, and
# sends fail with a broken pipe.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
c.close()
gevent.sleep(0.02)
def op(name, f):
    try:
        r = f(); L.append("%s ok %r" % (name, r))
    except OSError as e:
        L.append("%s %s" % (name, type(e).__name__))
op("send", lambda: s.send(b"a"))
gevent.sleep(0.02)
op("recv", lambda: s.recv(10))
op("recv", lambda: s.recv(10))
op("send", lambda: s.send(b"b"))
print(L)
