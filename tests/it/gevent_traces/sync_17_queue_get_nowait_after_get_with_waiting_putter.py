import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
q = Queue(1)
q.put("a")
def putter():
    log("p put b"); q.put("b"); log("p put done")
gevent.spawn(putter)
gevent.sleep(0)
log("main get %s q=%d" % (q.get(), q.qsize()))
try:
    log("main get_nowait %s" % q.get_nowait())
except Empty:
    log("main get_nowait Empty")
log("main get %s q=%d" % (q.get(), q.qsize()))
gevent.sleep(0)
log("main done")
print(json.dumps(L))
