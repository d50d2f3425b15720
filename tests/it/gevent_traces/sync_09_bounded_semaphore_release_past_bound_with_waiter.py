import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.lock import BoundedSemaphore
sem = BoundedSemaphore(1)
sem.acquire()
def worker():
    log("w acquire"); sem.acquire(); log("w got")
    sem.release(); log("w released")
    try:
        sem.release()
    except ValueError:
        log("w second release ValueError")
g = gevent.spawn(worker)
gevent.sleep(0)
sem.release(); log("main released")
try:
    sem.release()
except ValueError:
    log("main second release ValueError")
g.join()
log("main done")
print(json.dumps(L))
