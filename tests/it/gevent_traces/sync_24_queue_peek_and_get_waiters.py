import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
q = Queue()
def peeker(n):
    log("%s peek" % n); log("%s peeked %s" % (n, q.peek()))
def getter(n):
    log("%s get" % n); log("%s got %s" % (n, q.get()))
a = gevent.spawn(peeker, "P"); b = gevent.spawn(getter, "G"); gevent.sleep(0)
q.put("x"); log("main put x")
gevent.sleep(0)
log("main q=%d P dead=%s" % (q.qsize(), a.dead))
q.put("y"); log("main put y")
gevent.joinall([a, b])
log("main q=%d" % q.qsize())
print(json.dumps(L))
