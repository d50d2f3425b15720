import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.pool import Pool, Group
pool = Pool(2)
def task(i):
    log("t%d start free=%d len=%d" % (i, pool.free_count(), len(pool)))
    gevent.sleep(0)
    log("t%d end" % i)
for i in range(4):
    log("main spawn t%d free=%d" % (i, pool.free_count()))
    pool.spawn(task, i)
    log("main spawned t%d free=%d len=%d" % (i, pool.free_count(), len(pool)))
pool.join()
log("main joined free=%d len=%d" % (pool.free_count(), len(pool)))
print(json.dumps(L))
