import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
q = Queue(1)
q.put("a")
def putter(x):
    log("put %s start" % x); q.put(x); log("put %s done" % x)
for x in "bcd":
    gevent.spawn(putter, x)
gevent.sleep(0)
log("main q=%d" % q.qsize())
for _ in range(4):
    x = q.get(); log("main got %s q=%d" % (x, q.qsize()))
    gevent.sleep(0)
log("main end q=%d" % q.qsize())
print(json.dumps(L))
