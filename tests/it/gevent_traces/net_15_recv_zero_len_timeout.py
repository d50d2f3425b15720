# recv(0) with a socket timeout and nothing arriving.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
s.settimeout(0.03)
try:
    L.append("recv0 %r" % s.recv(0))
except socket.timeout:
    L.append("recv0 timed out")
print(L)
