# UDP: recvfrom times out; a datagram sent to ourselves arrives with our
# own address; a connected socket whose peer port is closed gets
# ECONNREFUSED on the recv after a send, then times out again.
import gevent, errno
from gevent import socket
L = []
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
u.settimeout(0.03)
try:
    u.recvfrom(100)
except socket.timeout:
    L.append("recvfrom timed out")
u.sendto(b"me", u.getsockname())
d, a = u.recvfrom(100)
L.append("got %s from self %s" % (d.decode(), a == u.getsockname()))
tmp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); tmp.bind(("127.0.0.1", 0)); dead = tmp.getsockname(); tmp.close()
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); v.connect(dead); v.settimeout(0.05)
v.send(b"anyone?")
for i in range(2):
    try:
        v.recv(100)
    except socket.timeout:
        L.append("recv timed out")
    except OSError as e:
        L.append("recv %s" % errno.errorcode[e.errno])
print(L)
