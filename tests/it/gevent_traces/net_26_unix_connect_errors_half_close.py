# Unix sockets: connect to a missing path, to a path whose listener is
# closed, bind on a path in use; then a half close over a listener's
# connection.
import gevent, os, errno, tempfile
from gevent import socket
L = []
d = tempfile.mkdtemp(); p = os.path.join(d, "s")
def err(f):
    try:
        f(); return "ok"
    except OSError as e:
        return "%s %s" % (type(e).__name__, errno.errorcode[e.errno])
L.append("missing: " + err(lambda: socket.socket(socket.AF_UNIX).connect(p)))
lis = socket.socket(socket.AF_UNIX); lis.bind(p); lis.listen(1)
L.append("bind in use: " + err(lambda: socket.socket(socket.AF_UNIX).bind(p)))
def server():
    s, _ = lis.accept()
    L.append("server read %r" % s.recv(10))
    L.append("server read %r" % s.recv(10))
    s.sendall(b"back"); s.close()
g = gevent.spawn(server)
c = socket.socket(socket.AF_UNIX); c.connect(p)
c.sendall(b"req"); c.shutdown(socket.SHUT_WR)
L.append("client read %r" % c.recv(10))
L.append("client read %r" % c.recv(10))
g.join()
lis.close()
L.append("stale: " + err(lambda: socket.socket(socket.AF_UNIX).connect(p)))
os.unlink(p); os.rmdir(d)
print(L)
