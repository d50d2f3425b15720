# Closing the write end wakes a parked reader with end of file.
import gevent, os
from gevent.os import nb_read, make_nonblocking
t = []
r, w = os.pipe()
make_nonblocking(r)
g = gevent.spawn(lambda: t.append("r-eof" if nb_read(r, 10) == b"" else "r-data"))
gevent.sleep(0)
t.append("closing")
os.close(w)
g.join()
t.append("main")
print(t)
