# A client connects and sends; the listener is closed before accepting:
# the client's recv reports the reset; a second recv gives end of stream.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(4)
c = socket.create_connection(lis.getsockname()); c.sendall(b"hello")
gevent.sleep(0.01)
lis.close()
for i in range(2):
    try:
        L.append("recv %r" % c.recv(10))
    except OSError as e:
        L.append("recv %s" % type(e).__name__)
print(L)
