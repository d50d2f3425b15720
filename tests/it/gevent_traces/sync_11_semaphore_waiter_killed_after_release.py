import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.lock import Semaphore
sem = Semaphore(1)
sem.acquire()
def worker(i):
    log("w%d acquire" % i)
    try:
        with sem:
            log("w%d got" % i)
            gevent.sleep(0); log("w%d release" % i)
    except gevent.GreenletExit:
        log("w%d killed" % i); raise
gs = [gevent.spawn(worker, i) for i in range(3)]
gevent.sleep(0)
sem.release(); log("main released")
gs[0].kill(); log("main killed w0")
gevent.joinall(gs)
log("main counter=%s" % sem.counter)
print(json.dumps(L))
