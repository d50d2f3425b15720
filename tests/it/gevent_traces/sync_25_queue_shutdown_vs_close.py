import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
q = Queue(1)
q.put("a")
def putter():
    log("p put b")
    try:
        q.put("b"); log("p put ok")
    except ShutDown:
        log("p ShutDown")
p = gevent.spawn(putter); gevent.sleep(0)
q.shutdown(); log("main shutdown")
gevent.sleep(0)
log("main get %s" % q.get())
try:
    q.get()
except ShutDown:
    log("main get ShutDown")
try:
    q.put("c")
except ShutDown:
    log("main put ShutDown")
q2 = Queue()
def getter(i):
    log("g%d get" % i)
    try:
        log("g%d got %s" % (i, q2.get()))
    except ShutDown:
        log("g%d ShutDown" % i)
gs = [gevent.spawn(getter, i) for i in range(2)]
gevent.sleep(0)
q2.shutdown(); log("main shutdown q2")
gevent.joinall(gs)
print(json.dumps(L))
