# StreamServer: three clients connect one after another before main
# yields; handlers start in connection order, each logs its first byte.
import gevent
from gevent import socket
from gevent.server import StreamServer
L = []
def handle(sock, addr):
    L.append("h start %s" % sock.recv(1).decode())
    gevent.sleep(0.01)
    L.append("h end")
srv = StreamServer(("127.0.0.1", 0), handle); srv.start()
cs = []
for i in range(3):
    c = socket.create_connection(srv.address); c.sendall(str(i).encode()); cs.append(c)
L.append("clients connected")
gevent.sleep(0.2)
srv.stop()
L.append("stopped")
print(L)
