# A writer parks on a full pipe; a reader drains it; a ticker runs meanwhile.
import gevent, os
from gevent.os import nb_read, nb_write, make_nonblocking
t = []
r, w = os.pipe()
make_nonblocking(r)
make_nonblocking(w)
N = 1 << 20
def writer():
    t.append("w-start")
    data = b"z" * N
    sent = 0
    while sent < N:
        sent += nb_write(w, data[sent:])
    t.append("w-done")
    os.close(w)
def reader():
    t.append("r-start")
    got = 0
    while True:
        b = nb_read(r, 65536)
        if not b:
            break
        got += len(b)
    t.append("r-eof-%d" % got)
gw = gevent.spawn(writer)
gr = gevent.spawn(reader)
gevent.joinall([gw, gr])
t.append("main")
print(t)
