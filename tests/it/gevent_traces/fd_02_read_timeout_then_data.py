# A read wait on a pipe times out; data written later is read.
import gevent, os, socket
from gevent.os import nb_read, make_nonblocking
from gevent.socket import wait_read
t = []
r, w = os.pipe()
make_nonblocking(r)
def reader():
    try:
        wait_read(r, timeout=0.02)
        t.append("ready")
    except socket.timeout as e:
        t.append("timeout")
    t.append("got-" + nb_read(r, 10).decode())
a = gevent.spawn(reader)
ticks = gevent.spawn(lambda: [gevent.sleep(0.005) for _ in range(2)] and t.append("ticker"))
a.join(0.04)
t.append("write")
os.write(w, b"x")
a.join()
t.append("main")
print(t)
