# sendall of 8 MiB to a reader that takes 64 KiB every millisecond while a
# ticker greenlet runs: the ticker keeps running, the reader gets every
# byte, in order.
import gevent
from gevent import socket
L = []
lis = socket.socket(); lis.bind(("127.0.0.1", 0)); lis.listen(1)
c = socket.create_connection(lis.getsockname()); s, _ = lis.accept()
N = 8 << 20
data = bytes(range(256)) * (N // 256)
ticks = [0]
def ticker():
    while True:
        gevent.sleep(0.001); ticks[0] += 1
def reader():
    got = bytearray()
    while len(got) < N:
        got += s.recv(65536)
        gevent.sleep(0.001)
    L.append("reader intact %s" % (bytes(got) == data))
t = gevent.spawn(ticker); r = gevent.spawn(reader)
c.sendall(data)
L.append("sendall returned ticks>10 %s" % (ticks[0] > 10))
r.join(); t.kill()
print(L)
