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
        sem.acquire(); log("w%d got" % i); sem.release()
    except gevent.GreenletExit:
        log("w%d killed" % i); raise
gs = [gevent.spawn(worker, i) for i in range(3)]
gevent.sleep(0)
gs[0].kill(block=False); log("main kill_nowait w0")
sem.release(); log("main released")
gevent.joinall(gs)
log("main counter=%s" % sem.counter)
print(json.dumps(L))
