import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.lock import Semaphore
sem = Semaphore(1)
sem.acquire(); log("main acquired")
def worker(i):
    log("w%d acquire" % i); sem.acquire(); log("w%d got" % i)
    sem.release(); log("w%d released" % i)
for i in range(3):
    gevent.spawn(worker, i)
gevent.sleep(0)
sem.release(); log("main released")
gevent.sleep(0)
log("main back free=%s" % sem.counter)
print(json.dumps(L))
