import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
q = Queue(1)
def consumer():
    for _ in range(4):
        x = q.get(); log("got %s q=%d" % (x, q.qsize()))
def producer():
    for i in range(4):
        q.put(i); log("put %d q=%d" % (i, q.qsize()))
c = gevent.spawn(consumer); p = gevent.spawn(producer)
gevent.joinall([c, p])
log("main q=%d" % q.qsize())
print(json.dumps(L))
