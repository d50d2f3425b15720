# Two locals set in one greenlet (second first): the order their values
# go when it ends.
import gevent
from gevent.local import local
t = []
l1 = local()
l2 = local()
class Noisy:
    def __init__(self, n): self.n = n
    def __del__(self): t.append("drop-" + self.n)
def body():
    l2.v = Noisy("l2")
    l1.v = Noisy("l1")
g = gevent.spawn(body)
g.join()
del g
gevent.sleep(0.01)
import gc; gc.collect()
t.append("main")
print(t)
