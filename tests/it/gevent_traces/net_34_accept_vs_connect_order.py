# A server greenlet parks in accept; a client greenlet connects and
# writes; main joins both. The interleaving.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
def server():
    L.append("server accepting")
    s, _ = lis.accept()
    L.append("server accepted")
    L.append("server read %s" % s.recv(10).decode())
    s.sendall(b"pong")
    L.append("server sent")
def client():
    L.append("client connecting")
    c = socket.create_connection(lis.getsockname())
    L.append("client connected")
    c.sendall(b"ping")
    L.append("client sent")
    L.append("client read %s" % c.recv(10).decode())
a = gevent.spawn(server); b = gevent.spawn(client)
gevent.joinall([a, b])
print(L)
