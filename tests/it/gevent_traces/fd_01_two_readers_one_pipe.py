# Two greenlets wait to read one pipe; each write is read by one of them,
# in the order they started waiting.
import gevent, os
from gevent.os import nb_read, make_nonblocking
t = []
r, w = os.pipe()
make_nonblocking(r)
def reader(n):
    t.append(n + "-" + nb_read(r, 10).decode())
a = gevent.spawn(reader, "a")
b = gevent.spawn(reader, "b")
gevent.sleep(0)
os.write(w, b"x")
gevent.sleep(0.01)
t.append("mid")
os.write(w, b"y")
gevent.joinall([a, b])
t.append("main")
print(t)
