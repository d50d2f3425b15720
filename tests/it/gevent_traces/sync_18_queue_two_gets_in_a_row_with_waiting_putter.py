import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
q = Queue(1)
q.put("a")
def putter():
    log("p put b"); q.put("b"); log("p put done q=%d" % q.qsize())
gevent.spawn(putter)
gevent.sleep(0)
log("main got %s" % q.get())
log("main got %s" % q.get())
log("main done q=%d" % q.qsize())
print(json.dumps(L))
