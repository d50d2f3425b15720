# When is a greenlet's local value dropped: when the greenlet ends, or when
# its last handle goes? Returned and killed greenlets.
import gevent, gc
from gevent.local import local
t = []
loc = local()
class Noisy:
    def __init__(self, n): self.n = n
    def __del__(self): t.append("drop-" + self.n)
def body(n):
    loc.v = Noisy(n)
    gevent.sleep(0.01 if n == "r" else 10)
    t.append(n + "-end")
r = gevent.spawn(body, "r")
k = gevent.spawn(body, "k")
r.join()
t.append("r-joined")
k.kill()
t.append("k-killed")
del r
t.append("r-handle-dropped")
del k
t.append("k-handle-dropped")
gevent.sleep(0.01)
gc.collect()
t.append("main")
print(t)
