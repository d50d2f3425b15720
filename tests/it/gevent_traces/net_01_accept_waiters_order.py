# Three greenlets park in accept() on one listener; three clients connect
# one after another. gevent refuses the second waiter on one socket.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(16)
addr = lis.getsockname()
def acceptor(i):
    try:
        c, _ = lis.accept()
        L.append("a%d got %s" % (i, c.recv(1).decode()))
        c.close()
    except Exception as e:
        L.append("a%d %s" % (i, type(e).__name__))
gs = [gevent.spawn(acceptor, i) for i in range(3)]
gevent.sleep(0)
cs = []
for i in range(3):
    c = socket.create_connection(addr); c.sendall(str(i).encode()); cs.append(c)
    gevent.sleep(0.02)
gevent.joinall(gs, timeout=1)
L.append("dead=%s" % [g.dead for g in gs])
print(L)
