# connect to a port nobody listens on: refused at once (with and without
# a timeout); connect to a listener whose backlog is full, with a
# timeout: times out.
import gevent, errno
from gevent import socket
L = []
tmp = socket.socket(); tmp.bind(("127.0.0.1", 0)); port = tmp.getsockname()[1]; tmp.close()
for t in (None, 0.5):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=t)
    except OSError as e:
        L.append("refused %s %s" % (type(e).__name__, errno.errorcode[e.errno]))
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(0)
held = []
timed_out = False
for i in range(8):
    try:
        held.append(socket.create_connection(lis.getsockname(), timeout=0.1))
    except socket.timeout as e:
        L.append("timed out: %s" % e)
        break
L.append("some connected %s" % (len(held) > 0))
print(L)
