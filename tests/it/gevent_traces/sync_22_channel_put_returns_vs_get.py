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
# getter first
g = gevent.spawn(getter, "g1"); gevent.sleep(0)
p = gevent.spawn(putter, "p1", "x"); gevent.joinall([g, p])
# putter first
p = gevent.spawn(putter, "p2", "y"); gevent.sleep(0)
g = gevent.spawn(getter, "g2"); gevent.joinall([g, p])
# main as getter with a putter waiting
p = gevent.spawn(putter, "p3", "z"); gevent.sleep(0)
log("main got %s" % ch.get()); log("main after get p3 dead=%s" % p.dead)
p.join()
print(json.dumps(L))
