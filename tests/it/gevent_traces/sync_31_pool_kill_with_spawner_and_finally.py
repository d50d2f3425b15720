import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.pool import Pool, Group
pool = Pool(2)
def task(i):
    try:
        log("t%d start" % i); gevent.sleep(10)
    finally:
        log("t%d finally" % i)
pool.spawn(task, 0); pool.spawn(task, 1)
gevent.sleep(0)
log("main kill free=%d len=%d" % (pool.free_count(), len(pool)))
pool.kill()
log("main killed free=%d len=%d" % (pool.free_count(), len(pool)))
pool.spawn(task, 2)
gevent.sleep(0)
pool.kill()
log("main done len=%d" % len(pool))
print(json.dumps(L))
