import json, gevent
from gevent.pool import Pool
L = []
log = L.append
pool = Pool(1)
pool.spawn(lambda: (log("m start"), gevent.sleep(0.05), log("m end")))
gevent.spawn(lambda: log("other ran"))
log("main wa0")
r = pool.wait_available(timeout=0)
log("main got %d" % r)
gevent.sleep(0)
log("main after sleep0")
pool.join()
print(json.dumps(L))
