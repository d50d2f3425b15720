import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
ch = Channel()
def getter(n):
    log("%s get" % n); log("%s got %s" % (n, ch.get()))
def putter(n, x):
    log("%s put %s" % (n, x)); ch.put(x); log("%s put returned" % n)
gs = [gevent.spawn(putter, "p0", "a"), gevent.spawn(putter, "p1", "b"),
      gevent.spawn(getter, "g0"), gevent.spawn(getter, "g1")]
gevent.joinall(gs)
log("main done")
print(json.dumps(L))
