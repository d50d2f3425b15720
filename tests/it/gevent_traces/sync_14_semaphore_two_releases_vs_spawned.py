import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.lock import Semaphore
sem = Semaphore(0)
def worker(i):
    log("w%d acquire" % i); sem.acquire(); log("w%d got" % i)
gs = [gevent.spawn(worker, i) for i in range(2)]
gevent.sleep(0)
sem.release()
gevent.spawn(log, "X ran")
sem.release()
log("main released twice")
gevent.joinall(gs)
log("main done")
print(json.dumps(L))
