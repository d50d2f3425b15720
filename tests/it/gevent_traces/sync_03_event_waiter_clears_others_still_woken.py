import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
ev = Event()
def waiter(i):
    log("w%d wait" % i); r = ev.wait(); log("w%d woke %s set=%s" % (i, r, ev.is_set()))
    if i == 0:
        ev.clear(); log("w0 cleared")
for i in range(3):
    gevent.spawn(waiter, i)
gevent.sleep(0)
def setter():
    ev.set(); log("setter set")
    gevent.sleep(0); log("setter resumed set=%s" % ev.is_set())
s = gevent.spawn(setter)
s.join()
log("main done")
print(json.dumps(L))
