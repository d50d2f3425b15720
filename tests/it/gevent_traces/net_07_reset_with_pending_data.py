# The peer writes, then resets (SO_LINGER 0). The reader's reads.
import gevent, struct
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
c.sendall(b"abc")
gevent.sleep(0.02)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
gevent.sleep(0.02)
for i in range(3):
    try:
        L.append("read %r" % s.recv(10))
    except OSError as e:
        L.append("read error %s" % type(e).__name__)
for i in range(2):
    try:
        s.sendall(b"x")
        L.append("send ok")
    except OSError as e:
        L.append("send error %s" % type(e).__name__)
print(L)
