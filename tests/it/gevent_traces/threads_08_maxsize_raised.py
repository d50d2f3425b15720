# One thread, three greenlets: raising the pool's size starts the queued
# jobs without another submission.
import gevent, threading
from gevent.threadpool import ThreadPool
t = []
starts = []
tp = ThreadPool(1)
gates = [threading.Event() for _ in range(3)]
def job(i):
    starts.append(i)
    gates[i].wait()
    return i
gs = [gevent.spawn(lambda i=i: t.append("got%d" % tp.apply(job, (i,)))) for i in range(3)]
def until(cond):
    for _ in range(3000):
        if cond():
            return True
        gevent.sleep(0.001)
    return False
until(lambda: len(starts) == 1)
t.append("starts=%s" % starts)
tp.maxsize = 3
t.append("raised")
until(lambda: len(starts) == 3)
t.append("starts=%s" % sorted(starts))
for i, e in enumerate(gates):
    e.set()
    until(lambda: ("got%d" % i) in t)
gevent.joinall(gs)
print(t)
