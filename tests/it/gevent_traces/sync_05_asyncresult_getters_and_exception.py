import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
ar = AsyncResult()
def getter(i, t):
    log("g%d get" % i)
    try:
        v = ar.get(timeout=t); log("g%d value %s" % (i, v))
    except ValueError as e:
        log("g%d exc %s" % (i, e))
for i, t in [(0, None), (1, 10), (2, None)]:
    gevent.spawn(getter, i, t)
gevent.sleep(0)
ar.set_exception(ValueError("boom")); log("main set_exception ready=%s" % ar.ready())
gevent.sleep(0)
try:
    ar.get(timeout=0)
except ValueError as e:
    log("main exc %s" % e)
ar2 = AsyncResult()
try:
    ar2.get(timeout=0.01)
except gevent.Timeout:
    log("main ar2 timeout")
print(json.dumps(L))
