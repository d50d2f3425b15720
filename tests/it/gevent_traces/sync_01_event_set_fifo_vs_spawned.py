import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
ev = Event()
def waiter(i):
    log("w%d wait" % i); ev.wait(); log("w%d woke" % i)
for i in range(3):
    gevent.spawn(waiter, i)
gevent.sleep(0)
gevent.spawn(log, "A ran")  # spawned before set, not run yet
ev.set(); log("main after set")
gevent.spawn(log, "B ran")  # spawned after set
gevent.sleep(0)
log("main back")
print(json.dumps(L))
