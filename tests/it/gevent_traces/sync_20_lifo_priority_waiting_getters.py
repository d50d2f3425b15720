import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
for cls in (LifoQueue, PriorityQueue):
    q = cls()
    def getter(i):
        log("%s g%d got %s" % (cls.__name__, i, q.get()))
    gs = [gevent.spawn(getter, i) for i in range(2)]
    gevent.sleep(0)
    for x in (3, 1, 2):
        q.put(x)
    log("%s main put q=%d" % (cls.__name__, q.qsize()))
    gevent.joinall(gs)
    log("%s left %s" % (cls.__name__, q.get()))
print(json.dumps(L))
