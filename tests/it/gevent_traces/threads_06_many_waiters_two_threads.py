# Five greenlets, two threads: jobs start in call order, at most two at
# once, each taking the slot the previous one freed.
import gevent, threading
from gevent.threadpool import ThreadPool
t = []
starts = []
lock = threading.Lock()
running = [0, 0]
tp = ThreadPool(2)
gates = [threading.Event() for _ in range(5)]
def job(i):
    with lock:
        starts.append(i)
        running[0] += 1
        running[1] = max(running[1], running[0])
    gates[i].wait()
    with lock:
        running[0] -= 1
    return i
def w(i):
    t.append("got%d" % tp.apply(job, (i,)))
gs = [gevent.spawn(w, i) for i in range(5)]
def until(cond):
    while not cond():
        gevent.sleep(0.001)
until(lambda: len(starts) == 2)
for i, nstarts in [(1, 3), (0, 4), (3, 5), (2, 5), (4, 5)]:
    gates[i].set()
    until(lambda: ("got%d" % i) in t and len(starts) == nstarts)
    t.append("starts=%s" % starts)
gevent.joinall(gs)
t.append("max-running=%d" % running[1])
print(t)
