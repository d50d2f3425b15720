import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.lock import Semaphore
sem = Semaphore(1)
sem.acquire()
def worker(i, t):
    log("w%d acquire" % i)
    r = sem.acquire(timeout=t)
    log("w%d -> %s" % (i, r))
    if r:
        sem.release()
g0 = gevent.spawn(worker, 0, 0.01); g1 = gevent.spawn(worker, 1, None); g2 = gevent.spawn(worker, 2, 0)
gevent.sleep(0.1)
log("main release")
sem.release()
gevent.joinall([g0, g1, g2])
log("main counter=%s" % sem.counter)
print(json.dumps(L))
