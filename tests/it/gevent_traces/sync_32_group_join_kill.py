import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.pool import Pool, Group
group = Group()
def task(n, t):
    try:
        log("%s start" % n); gevent.sleep(t); log("%s end" % n)
    finally:
        log("%s finally" % n)
group.spawn(task, "a", 0.01); group.spawn(task, "b", 0.02)
group.join()
log("joined len=%d" % len(group))
group.spawn(task, "c", 10)
gevent.sleep(0)
r = group.join(timeout=0.01)
log("join timeout -> %s len=%d" % (r, len(group)))
group.kill()
log("killed len=%d" % len(group))
print(json.dumps(L))
