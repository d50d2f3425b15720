import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
ar = AsyncResult()
def getter(i, t):
    log("g%d get" % i)
    try:
        log("g%d value %s" % (i, ar.get(timeout=t)))
    except gevent.Timeout:
        log("g%d timeout" % i)
g0 = gevent.spawn(getter, 0, 0.01); g1 = gevent.spawn(getter, 1, None); g2 = gevent.spawn(getter, 2, 10)
gevent.sleep(0.1)
log("main set")
ar.set(42)
gevent.joinall([g0, g1, g2])
log("main %s" % ar.get())
print(json.dumps(L))
