import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.pool import Pool, Group
pool = Pool(2)
def f(x):
    log("start %d free=%d" % (x, pool.free_count())); gevent.sleep(0); log("end %d" % x); return x * 10
log("map %s" % pool.map(f, [1, 2, 3]))
g = Group()
log("group map %s" % g.map(f, [1, 2, 3]))
print(json.dumps(L))
