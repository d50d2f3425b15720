import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.lock import Semaphore
sem = Semaphore(1)
sem.acquire()
def worker():
    log("w acquire"); sem.acquire(); log("w got"); sem.release()
g = gevent.spawn(worker)
gevent.sleep(0)
sem.release()
log("main try_acquire %s" % sem.acquire(blocking=False))
gevent.sleep(0)
log("main after yield: w dead=%s" % g.dead)
sem.release()
g.join()
log("main done counter=%s" % sem.counter)
print(json.dumps(L))
