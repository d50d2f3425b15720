import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
ev = Event()
def waiter(i, t):
    log("w%d wait" % i); r = ev.wait(timeout=t); log("w%d -> %s" % (i, r))
gevent.spawn(waiter, 0, None); gevent.spawn(waiter, 1, 5); gevent.spawn(waiter, 2, 0.01); gevent.spawn(waiter, 3, None)
gevent.sleep(0.1)
log("main set")
ev.set()
gevent.sleep(0)
log("main done")
print(json.dumps(L))
