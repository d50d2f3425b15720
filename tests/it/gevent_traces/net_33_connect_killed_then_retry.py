# A greenlet parked in connect (the listener's backlog is full) is killed;
# with_timeout around another connect gives Timeout; after the listener
# accepts the queued connection, a new connect succeeds.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(0)
addr = lis.getsockname()
held = []
while True:
    try:
        held.append(socket.create_connection(addr, timeout=0.05))
    except socket.timeout:
        break
L.append("backlog full")
def conn():
    try:
        socket.create_connection(addr)
        L.append("connected?!")
    except gevent.GreenletExit:
        L.append("connect killed"); raise
g = gevent.spawn(conn)
gevent.sleep(0.02)
g.kill()
L.append("dead %s" % g.dead)
r = gevent.with_timeout(0.05, socket.create_connection, addr, timeout_value="elapsed")
L.append("with_timeout %s" % r)
lis.close()
lis2 = socket.socket(); lis2.bind(("127.0.0.1", 0)); lis2.listen(1)
c = socket.create_connection(lis2.getsockname())
L.append("new listener connect ok")
print(L)
