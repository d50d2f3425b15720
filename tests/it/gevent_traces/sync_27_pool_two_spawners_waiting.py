import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.pool import Pool, Group
pool = Pool(1)
def task(n):
    log("%s start" % n); gevent.sleep(0); log("%s end" % n)
def spawner(n):
    log("S%s spawn" % n); pool.spawn(task, n); log("S%s spawned free=%d" % (n, pool.free_count()))
pool.spawn(task, "t0")
a = gevent.spawn(spawner, "a"); b = gevent.spawn(spawner, "b")
gevent.joinall([a, b])
pool.join()
log("main done")
print(json.dumps(L))
