import json, gevent
from gevent.event import Event
from gevent.pool import Pool
L = []
log = L.append
pool = Pool(1)
ev = Event()
def member(n, wait):
    log("%s start" % n)
    if wait: ev.wait()
    log("%s end" % n)
m = pool.spawn(member, "m", True)
def cb(g):
    log("cb free=%d" % pool.free_count()); r = pool.wait_available(); log("cb got %d" % r)
m.link(cb)
def spawner(n):
    log("%s spawn" % n); pool.spawn(member, n + "-m", False); log("%s spawned free=%d" % (n, pool.free_count()))
gs = [gevent.spawn(spawner, "a")]
gevent.sleep(0)
log("main set")
ev.set()
gevent.joinall(gs)
pool.join()
gevent.sleep(0.01)
log("main done")
print(json.dumps(L))
