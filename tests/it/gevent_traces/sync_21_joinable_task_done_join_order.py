import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.queue import Queue, LifoQueue, PriorityQueue, Channel, ShutDown, Empty, Full
q = Queue()
def worker():
    while True:
        x = q.get(); log("w got %s" % x)
        gevent.sleep(0)
        q.task_done(); log("w done %s unfinished=%d" % (x, q.unfinished_tasks))
def joiner():
    log("J join"); q.join(); log("J joined")
gevent.spawn(worker)
q.put(1); q.put(2)
j = gevent.spawn(joiner)
log("main join")
q.join()
log("main joined")
j.join()
log("main: join on empty -> %s" % q.join())
print(json.dumps(L))
