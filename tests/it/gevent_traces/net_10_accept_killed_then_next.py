# A greenlet parked in accept is killed; the listener still serves a
# later accept; a with_timeout around accept leaves it usable too.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(4)
def acc():
    try:
        lis.accept()
        L.append("accepted?!")
    except gevent.GreenletExit:
        L.append("acceptor killed")
        raise
g = gevent.spawn(acc)
gevent.sleep(0)
g.kill()
L.append("kill returned")
try:
    gevent.with_timeout(0.05, lis.accept)
except gevent.Timeout:
    L.append("accept timed out")
c = socket.create_connection(lis.getsockname()); c.sendall(b"hi")
s, _ = lis.accept()
L.append("then accepted %s" % s.recv(2).decode())
print(L)
