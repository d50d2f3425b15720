import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
q = Queue()
def getter(i):
    log("g%d get" % i); log("g%d got %s" % (i, q.get()))
gs = [gevent.spawn(getter, i) for i in range(2)]
gevent.sleep(0)
q.put(1)
gevent.spawn(log, "X ran")
q.put(2)
log("main put twice q=%d" % q.qsize())
gevent.joinall(gs)
log("main done")
print(json.dumps(L))
