import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.pool import Pool, Group
ev1 = Event(); ev2 = Event(); ar = AsyncResult()
def setter():
    ev2.set(); ar.set(1); ev1.set()
objs = [ev1, ev2, ar]
gevent.spawn(setter)
order = [objs.index(o) for o in gevent.iwait(objs)]
log("iwait same turn %s" % order)
a = Event(); b = Event(); c = Event()
def later():
    gevent.sleep(0.01); c.set(); gevent.sleep(0.01); a.set(); gevent.sleep(0.01); b.set()
gevent.spawn(later)
objs = [a, b, c]
r = gevent.wait(objs, count=2)
log("wait count=2 %s" % [objs.index(o) for o in r])
r = gevent.wait(objs)
log("wait all %s" % sorted(objs.index(o) for o in r))
x = Event()
r = gevent.wait([x, a], timeout=0.01)
log("wait timeout %s" % [[x, a].index(o) for o in r])
g1 = gevent.spawn(gevent.sleep, 0.02); g2 = gevent.spawn(gevent.sleep, 0.01)
objs = [g1, g2]
log("iwait greenlets %s" % [objs.index(o) for o in gevent.iwait(objs)])
print(json.dumps(L))
