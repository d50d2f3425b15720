import json, gevent
from gevent.event import Event
from gevent.pool import Pool
L = []
log = L.append
pool = Pool(3)
ev = Event()
def member(n):
    log("%s start" % n); ev.wait(); log("%s end" % n)
pool.spawn(member, "m1"); pool.spawn(member, "m2")
pool.spawn(lambda: (log("m3 start"), gevent.sleep(10)))
def waiter(n):
    log("%s wait" % n); r = pool.wait_available(); log("%s got %d" % (n, r))
gs = [gevent.spawn(waiter, "w1"), gevent.spawn(waiter, "w2")]
gevent.sleep(0)
log("main set")
ev.set()
gevent.joinall(gs)
log("main free=%d" % pool.free_count())
pool.kill()
log("main done")
print(json.dumps(L))
