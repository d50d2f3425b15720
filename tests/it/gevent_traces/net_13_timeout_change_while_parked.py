# A reader parks with no timeout; another greenlet then sets a 20 ms
# timeout on the socket; the parked reader keeps waiting (data at 100
# ms); the next recv uses the new timeout.
import gevent, time
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
def reader():
    try:
        L.append("reader got %s" % s.recv(10).decode())
    except socket.timeout:
        L.append("reader timed out")
g = gevent.spawn(reader)
gevent.sleep(0)
s.settimeout(0.02)
L.append("timeout set")
gevent.sleep(0.1)
c.sendall(b"late")
g.join()
try:
    s.recv(10)
except socket.timeout:
    L.append("next recv timed out")
print(L)
