# send() with a timeout into a peer that does not read: sends succeed
# until the buffers fill, then one times out; every byte that a send
# reported is what the peer reads, nothing of the failed send.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
c.settimeout(0.1)
total = 0
chunk = b"x" * 65536
while True:
    try:
        total += c.send(chunk)
    except socket.timeout:
        L.append("send timed out")
        break
L.append("sent>0 %s" % (total > 0))
got = 0
s.settimeout(0.2)
while True:
    try:
        d = s.recv(1 << 20)
    except socket.timeout:
        break
    got += len(d)
L.append("peer got all sent %s" % (got == total))
c.settimeout(None)
c.sendall(b"end")
L.append("after: %s" % s.recv(10).decode())
print(L)
