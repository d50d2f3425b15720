import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.pool import Pool, Group
ev = Event()
def body(n):
    log("%s ran" % n)
    if n == "g1":
        ev.set()
g0 = gevent.spawn(body, "g0"); g1 = gevent.spawn(body, "g1"); g2 = gevent.spawn(body, "g2")
objs = [g2, ev, g0, g1]
r = gevent.wait(objs, count=1)
log("first %s" % [objs.index(o) for o in r])
r = gevent.wait(objs, count=3)
log("three %s" % [objs.index(o) for o in r])
print(json.dumps(L))
