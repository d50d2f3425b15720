import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.lock import Semaphore
lock = Semaphore(1)
def worker(i):
    for r in range(2):
        with lock:
            log("w%d in %d" % (i, r)); gevent.sleep(0); log("w%d out %d" % (i, r))
gs = [gevent.spawn(worker, i) for i in range(3)]
gevent.joinall(gs)
print(json.dumps(L))
