# A writer waits on a full pipe with a timeout; it times out, then a reader
# makes room and the write goes through.
import gevent, os, socket, fcntl
from gevent.os import nb_read, nb_write, make_nonblocking
from gevent.socket import wait_write
t = []
r, w = os.pipe()
make_nonblocking(r)
make_nonblocking(w)
n = 0
while True:
    try:
        n += os.write(w, b"z" * 65536)
    except BlockingIOError:
        break
t.append("full")
def writer():
    try:
        wait_write(w, timeout=0.02)
        t.append("writable")
    except socket.timeout:
        t.append("timeout")
    wait_write(w)
    t.append("wrote-%d" % os.write(w, b"y"))
g = gevent.spawn(writer)
g.join(0.04)
t.append("draining")
left = n
while left:
    left -= len(nb_read(r, 65536))
g.join()
t.append("main")
print(t)
