# A greenlet parked reading a pipe is killed; the next reader gets the data.
import gevent, os
from gevent.os import nb_read, make_nonblocking
t = []
r, w = os.pipe()
make_nonblocking(r)
def a():
    try:
        t.append("a-" + nb_read(r, 10).decode())
    finally:
        t.append("a-finally")
ga = gevent.spawn(a)
gevent.sleep(0)
ga.kill()
t.append("killed")
gb = gevent.spawn(lambda: t.append("b-" + nb_read(r, 10).decode()))
gevent.sleep(0)
os.write(w, b"x")
gb.join()
t.append("main")
print(t)
