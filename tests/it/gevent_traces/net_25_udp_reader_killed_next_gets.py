# UDP: a receiver parked on the socket is killed; a datagram sent after
# goes to the next receiver; with_timeout around recvfrom leaves no trace.
import gevent
from gevent import socket
L = []
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
g = gevent.spawn(u.recvfrom, 100)
gevent.sleep(0)
g.kill()
L.append("killed")
r = gevent.with_timeout(0.02, u.recvfrom, 100, timeout_value=None)
L.append("with_timeout %s" % r)
def rx():
    L.append("rx got %s" % u.recvfrom(100)[0].decode())
g2 = gevent.spawn(rx)
gevent.sleep(0)
s.sendto(b"d1", u.getsockname())
g2.join()
print(L)
