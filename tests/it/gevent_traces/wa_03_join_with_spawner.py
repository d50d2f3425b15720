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
pool.spawn(member, "m", True)
def spawner(n):
    log("%s spawn" % n); pool.spawn(member, n + "-m", False); log("%s spawned free=%d" % (n, pool.free_count()))
def joiner():
    log("j join"); pool.join(); log("j joined len=%d" % len(pool))
gs = [gevent.spawn(spawner, "a"), gevent.spawn(joiner)]
gevent.sleep(0)
log("main set")
ev.set()
gevent.joinall(gs)
pool.join()
log("main done")
print(json.dumps(L))
