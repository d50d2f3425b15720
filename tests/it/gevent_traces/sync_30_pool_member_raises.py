import json, gevent
from gevent.event import Event, AsyncResult
L = []
log = L.append
from gevent.pool import Pool, Group
import sys
gevent.get_hub().exception_stream = None
pool = Pool(2)
def task(i):
    log("t%d start" % i); gevent.sleep(0)
    if i == 1:
        raise ValueError("boom")
    log("t%d end" % i); return i
gs = [pool.spawn(task, i) for i in range(3)]
pool.join()
for g in gs:
    log("t%s ok=%s %s" % (gs.index(g), g.successful(), g.value if g.successful() else g.exception))
log("free=%d" % pool.free_count())
print(json.dumps(L))
