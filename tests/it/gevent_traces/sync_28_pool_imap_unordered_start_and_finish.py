import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.pool import Pool, Group
pool = Pool(2)
def f(x):
    log("start %d" % x); gevent.sleep(x / 100.0); log("end %d" % x); return x
for r in pool.imap_unordered(f, [5, 2, 4, 2]):
    log("result %d" % r)
log("---")
for r in pool.imap(f, [5, 2, 4]):
    log("result %d" % r)
print(json.dumps(L))
