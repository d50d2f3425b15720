# A reader parked in recv; the peer resets (SO_LINGER 0): what the
# reader's reads give.
import gevent, struct
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
def reader():
    for i in range(3):
        try:
            L.append("read %r" % s.recv(10))
        except OSError as e:
            L.append("read error %s" % type(e).__name__)
g = gevent.spawn(reader)
gevent.sleep(0)
L.append("resetting")
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
g.join()
print(L)
