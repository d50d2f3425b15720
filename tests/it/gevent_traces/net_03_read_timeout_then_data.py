# recv with a socket timeout times out; the peer then writes; the next
# recv gets every byte; a recv after that times out again.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
s.settimeout(0.05)
try:
    s.recv(10)
except socket.timeout as e:
    L.append("timeout: %s" % e)
c.sendall(b"abc")
L.append("got %s" % s.recv(10).decode())
try:
    s.recv(10)
except socket.timeout as e:
    L.append("timeout again")
c.sendall(b"de"); c.sendall(b"f")
gevent.sleep(0.02)
L.append("got %s" % s.recv(10).decode())
print(L)
